//! ITC-2007 track 3 (curriculum-based course timetabling): `.ctt` reader and
//! writer, solution reader and writer, and the competition's scorer.

use crate::error::{Error, Result};
use crate::model::*;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    pub name: String,
    pub teacher: String,
    pub lectures: usize,
    pub min_working_days: usize,
    pub students: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curriculum {
    pub name: String,
    pub courses: Vec<usize>,
}

/// One `.ctt` instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Instance {
    pub name: String,
    pub days: usize,
    pub periods_per_day: usize,
    pub courses: Vec<Course>,
    /// (name, capacity)
    pub rooms: Vec<(String, u32)>,
    pub curricula: Vec<Curriculum>,
    /// (course, day, period) when the course may not be taught.
    pub unavailability: Vec<(usize, usize, usize)>,
}

/// One scheduled lecture: (course, room, day, period).
pub type Lecture = (usize, usize, usize, usize);

struct Tokens<'a> {
    lines: Vec<(u32, &'a str)>,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        let lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i as u32 + 1, l))
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        Tokens { lines, pos: 0 }
    }
    fn err(&self, message: impl Into<String>) -> Error {
        let (line, column) = match self.lines.get(self.pos) {
            Some((n, l)) => (*n, (l.len() - l.trim_start().len()) as u32 + 1),
            None => (self.lines.last().map(|x| x.0 + 1).unwrap_or(1), 1),
        };
        Error::Syntax {
            line,
            column,
            message: message.into(),
        }
    }
    fn next_line(&mut self) -> Result<(u32, &'a str)> {
        let l = *self
            .lines
            .get(self.pos)
            .ok_or_else(|| self.err("unexpected end of file"))?;
        self.pos += 1;
        Ok(l)
    }
    fn header(&mut self, key: &str) -> Result<String> {
        let (n, l) = self.next_line()?;
        let Some(rest) = l.trim().strip_prefix(key).and_then(|r| r.strip_prefix(':')) else {
            return Err(Error::Syntax {
                line: n,
                column: 1,
                message: format!("expected \"{key}:\""),
            });
        };
        Ok(rest.trim().to_string())
    }
    fn header_num(&mut self, key: &str) -> Result<usize> {
        let v = self.header(key)?;
        v.parse().map_err(|_| {
            self.pos -= 1;
            self.err(format!("{key}: \"{v}\" is not a number"))
        })
    }
    fn section(&mut self, name: &str) -> Result<()> {
        let (n, l) = self.next_line()?;
        if l.trim() != name {
            return Err(Error::Syntax {
                line: n,
                column: 1,
                message: format!("expected \"{name}\", found \"{}\"", l.trim()),
            });
        }
        Ok(())
    }
    /// The fields of the next line, with their 1-based columns.
    fn fields(&mut self, count: Option<usize>) -> Result<(u32, Vec<(u32, &'a str)>)> {
        let (n, l) = self.next_line()?;
        let mut v = Vec::new();
        let mut col = 0usize;
        for part in l.split(|c: char| c.is_whitespace()) {
            if !part.is_empty() {
                v.push((l[..col].chars().count() as u32 + 1, part));
            }
            col += part.len() + 1;
        }
        if let Some(c) = count {
            if v.len() != c {
                return Err(Error::Syntax {
                    line: n,
                    column: 1,
                    message: format!("expected {c} fields, found {}", v.len()),
                });
            }
        }
        Ok((n, v))
    }
}

fn num<T: std::str::FromStr>(line: u32, (column, s): (u32, &str)) -> Result<T> {
    s.parse().map_err(|_| Error::Syntax {
        line,
        column,
        message: format!("\"{s}\" is not a valid number"),
    })
}

/// Parse a `.ctt` file's text.
pub fn read_ctt(text: &str) -> Result<Instance> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut t = Tokens::new(text);
    let mut inst = Instance {
        name: t.header("Name")?,
        ..Instance::default()
    };
    let n_courses = t.header_num("Courses")?;
    let n_rooms = t.header_num("Rooms")?;
    inst.days = t.header_num("Days")?;
    inst.periods_per_day = t.header_num("Periods_per_day")?;
    let n_curricula = t.header_num("Curricula")?;
    let n_constraints = t.header_num("Constraints")?;
    if inst.days == 0 || inst.periods_per_day == 0 || inst.periods_per_day > 64 || inst.days > 366 {
        return Err(t.err("days must be 1..366 and periods per day 1..64"));
    }
    t.section("COURSES:")?;
    let mut course_index = HashMap::new();
    for _ in 0..n_courses {
        let (n, f) = t.fields(Some(5))?;
        let c = Course {
            name: f[0].1.to_string(),
            teacher: f[1].1.to_string(),
            lectures: num(n, f[2])?,
            min_working_days: num(n, f[3])?,
            students: num(n, f[4])?,
        };
        if c.lectures > inst.days * inst.periods_per_day {
            return Err(Error::Syntax {
                line: n,
                column: f[2].0,
                message: format!(
                    "course {} has more lectures than the week has periods",
                    c.name
                ),
            });
        }
        if course_index
            .insert(c.name.clone(), inst.courses.len())
            .is_some()
        {
            return Err(Error::Syntax {
                line: n,
                column: 1,
                message: format!("course {} is defined twice", c.name),
            });
        }
        inst.courses.push(c);
    }
    t.section("ROOMS:")?;
    for _ in 0..n_rooms {
        let (n, f) = t.fields(Some(2))?;
        inst.rooms.push((f[0].1.to_string(), num(n, f[1])?));
    }
    t.section("CURRICULA:")?;
    for _ in 0..n_curricula {
        let (n, f) = t.fields(None)?;
        if f.len() < 2 {
            return Err(Error::Syntax {
                line: n,
                column: 1,
                message: "a curriculum line needs a name and a course count".into(),
            });
        }
        let k: usize = num(n, f[1])?;
        if f.len() != k + 2 {
            return Err(Error::Syntax {
                line: n,
                column: 1,
                message: format!(
                    "curriculum {} announces {k} courses but lists {}",
                    f[0].1,
                    f.len() - 2
                ),
            });
        }
        let mut courses = Vec::new();
        for &(column, name) in &f[2..] {
            courses.push(*course_index.get(name).ok_or(Error::Unknown {
                kind: "course",
                name: name.to_string(),
                line: n,
                column,
            })?);
        }
        inst.curricula.push(Curriculum {
            name: f[0].1.to_string(),
            courses,
        });
    }
    t.section("UNAVAILABILITY_CONSTRAINTS:")?;
    for _ in 0..n_constraints {
        let (n, f) = t.fields(Some(3))?;
        let c = *course_index.get(f[0].1).ok_or(Error::Unknown {
            kind: "course",
            name: f[0].1.to_string(),
            line: n,
            column: f[0].0,
        })?;
        let d: usize = num(n, f[1])?;
        let p: usize = num(n, f[2])?;
        if d >= inst.days || p >= inst.periods_per_day {
            return Err(Error::Syntax {
                line: n,
                column: f[1].0,
                message: format!("day {d} period {p} is outside the week"),
            });
        }
        inst.unavailability.push((c, d, p));
    }
    t.section("END.")?;
    Ok(inst)
}

/// Write an instance in `.ctt` format.
pub fn write_ctt(inst: &Instance) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Name: {}", inst.name);
    let _ = writeln!(s, "Courses: {}", inst.courses.len());
    let _ = writeln!(s, "Rooms: {}", inst.rooms.len());
    let _ = writeln!(s, "Days: {}", inst.days);
    let _ = writeln!(s, "Periods_per_day: {}", inst.periods_per_day);
    let _ = writeln!(s, "Curricula: {}", inst.curricula.len());
    let _ = writeln!(s, "Constraints: {}\n", inst.unavailability.len());
    s.push_str("COURSES:\n");
    for c in &inst.courses {
        let _ = writeln!(
            s,
            "{} {} {} {} {}",
            c.name, c.teacher, c.lectures, c.min_working_days, c.students
        );
    }
    s.push_str("\nROOMS:\n");
    for (r, cap) in &inst.rooms {
        let _ = writeln!(s, "{r}\t{cap}");
    }
    s.push_str("\nCURRICULA:\n");
    for q in &inst.curricula {
        let _ = write!(s, "{}  {} ", q.name, q.courses.len());
        let names: Vec<&str> = q
            .courses
            .iter()
            .map(|&c| inst.courses[c].name.as_str())
            .collect();
        let _ = writeln!(s, "{}", names.join(" "));
    }
    s.push_str("\nUNAVAILABILITY_CONSTRAINTS:\n");
    for &(c, d, p) in &inst.unavailability {
        let _ = writeln!(s, "{} {d} {p}", inst.courses[c].name);
    }
    s.push_str("\nEND.\n");
    s
}

/// Parse a solution: one `course room day period` line per lecture.
pub fn read_solution(inst: &Instance, text: &str) -> Result<Vec<Lecture>> {
    let courses: HashMap<&str, usize> = inst
        .courses
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let rooms: HashMap<&str, usize> = inst
        .rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r.0.as_str(), i))
        .collect();
    let mut t = Tokens::new(text);
    let mut out = Vec::new();
    while t.pos < t.lines.len() {
        let (n, f) = t.fields(Some(4))?;
        let c = *courses.get(f[0].1).ok_or(Error::Unknown {
            kind: "course",
            name: f[0].1.to_string(),
            line: n,
            column: f[0].0,
        })?;
        let r = *rooms.get(f[1].1).ok_or(Error::Unknown {
            kind: "room",
            name: f[1].1.to_string(),
            line: n,
            column: f[1].0,
        })?;
        let d: usize = num(n, f[2])?;
        let p: usize = num(n, f[3])?;
        if d >= inst.days || p >= inst.periods_per_day {
            return Err(Error::Syntax {
                line: n,
                column: f[2].0,
                message: format!("day {d} period {p} is outside the week"),
            });
        }
        out.push((c, r, d, p));
    }
    Ok(out)
}

pub fn write_solution(inst: &Instance, lectures: &[Lecture]) -> String {
    let mut s = String::new();
    for &(c, r, d, p) in lectures {
        let _ = writeln!(s, "{} {} {d} {p}", inst.courses[c].name, inst.rooms[r].0);
    }
    s
}

/// The competition's evaluation of a solution (formulation UD2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Score {
    pub lectures: usize,
    pub conflicts: usize,
    pub availability: usize,
    pub room_occupancy: usize,
    pub room_capacity: usize,
    /// Days missing, before the weight 5.
    pub min_working_days: usize,
    /// Isolated lectures, before the weight 2.
    pub curriculum_compactness: usize,
    pub room_stability: usize,
}

impl Score {
    pub fn hard(&self) -> usize {
        self.lectures + self.conflicts + self.availability + self.room_occupancy
    }
    pub fn soft(&self) -> usize {
        self.room_capacity
            + 5 * self.min_working_days
            + 2 * self.curriculum_compactness
            + self.room_stability
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Violations of Lectures (hard) : {}", self.lectures)?;
        writeln!(f, "Violations of Conflicts (hard) : {}", self.conflicts)?;
        writeln!(
            f,
            "Violations of Availability (hard) : {}",
            self.availability
        )?;
        writeln!(
            f,
            "Violations of RoomOccupation (hard) : {}",
            self.room_occupancy
        )?;
        writeln!(f, "Cost of RoomCapacity (soft) : {}", self.room_capacity)?;
        writeln!(
            f,
            "Cost of MinWorkingDays (soft) : {}",
            5 * self.min_working_days
        )?;
        writeln!(
            f,
            "Cost of CurriculumCompactness (soft) : {}",
            2 * self.curriculum_compactness
        )?;
        writeln!(f, "Cost of RoomStability (soft) : {}", self.room_stability)?;
        write!(
            f,
            "Total hard = {}, total soft = {}",
            self.hard(),
            self.soft()
        )
    }
}

/// Score a solution exactly as the ITC-2007 validator does: the timetable is
/// a (course, period) → room matrix, so a second lecture of a course in the
/// same period replaces the first and counts as a missing lecture.
pub fn score(inst: &Instance, lectures: &[Lecture]) -> Score {
    let ppd = inst.periods_per_day;
    let np = inst.days * ppd;
    let nc = inst.courses.len();
    let mut t: Vec<Option<usize>> = vec![None; nc * np];
    for &(c, r, d, p) in lectures {
        if c < nc && d < inst.days && p < ppd && r < inst.rooms.len() {
            t[c * np + d * ppd + p] = Some(r);
        }
    }
    let mut s = Score::default();
    let curricula_of: Vec<Vec<usize>> = (0..nc)
        .map(|c| {
            (0..inst.curricula.len())
                .filter(|&q| inst.curricula[q].courses.contains(&c))
                .collect()
        })
        .collect();
    for (c, course) in inst.courses.iter().enumerate() {
        let n = (0..np).filter(|&p| t[c * np + p].is_some()).count();
        s.lectures += course.lectures.abs_diff(n);
        let days: BTreeSet<usize> = (0..np)
            .filter(|&p| t[c * np + p].is_some())
            .map(|p| p / ppd)
            .collect();
        s.min_working_days += course.min_working_days.saturating_sub(days.len());
        let rooms: BTreeSet<usize> = (0..np).filter_map(|p| t[c * np + p]).collect();
        s.room_stability += rooms.len().saturating_sub(1);
        for p in 0..np {
            if let Some(r) = t[c * np + p] {
                s.room_capacity += course.students.saturating_sub(inst.rooms[r].1) as usize;
            }
        }
    }
    for c1 in 0..nc {
        for c2 in c1 + 1..nc {
            let related = inst.courses[c1].teacher == inst.courses[c2].teacher
                || curricula_of[c1]
                    .iter()
                    .any(|q| curricula_of[c2].contains(q));
            if related {
                s.conflicts += (0..np)
                    .filter(|&p| t[c1 * np + p].is_some() && t[c2 * np + p].is_some())
                    .count();
            }
        }
    }
    for &(c, d, p) in &inst.unavailability {
        if t[c * np + d * ppd + p].is_some() {
            s.availability += 1;
        }
    }
    for p in 0..np {
        let mut per_room = vec![0usize; inst.rooms.len()];
        for c in 0..nc {
            if let Some(r) = t[c * np + p] {
                per_room[r] += 1;
            }
        }
        s.room_occupancy += per_room.iter().map(|&k| k.saturating_sub(1)).sum::<usize>();
    }
    for q in &inst.curricula {
        let busy = |p: usize| q.courses.iter().any(|&c| t[c * np + p].is_some());
        for &c in &q.courses {
            for p in 0..np {
                if t[c * np + p].is_none() {
                    continue;
                }
                let pp = p % ppd;
                let before = pp > 0 && busy(p - 1);
                let after = pp + 1 < ppd && busy(p + 1);
                if !before && !after {
                    s.curriculum_compactness += 1;
                }
            }
        }
    }
    s
}

/// The generic model of an instance: one activity per lecture, in course
/// order; teachers and curricula are resources; the soft constraints carry the
/// competition's weights.
pub fn to_model(inst: &Instance) -> Model {
    let mut m = Model {
        name: inst.name.clone(),
        days: (0..inst.days).map(|d| d.to_string()).collect(),
        periods: (0..inst.periods_per_day).map(|p| p.to_string()).collect(),
        capacity: CapacityRule::Soft(1),
        ..Model::default()
    };
    let mut teacher_index: HashMap<&str, usize> = HashMap::new();
    for c in &inst.courses {
        if !teacher_index.contains_key(c.teacher.as_str()) {
            teacher_index.insert(&c.teacher, m.teachers.len());
            m.teachers.push(Teacher {
                name: c.teacher.clone(),
                qualified_subjects: Vec::new(),
            });
        }
    }
    for (i, q) in inst.curricula.iter().enumerate() {
        m.atoms.push(q.name.clone());
        m.students.push(StudentsSet {
            name: q.name.clone(),
            size: 0,
            atoms: vec![i],
        });
    }
    for (r, cap) in &inst.rooms {
        m.rooms.push(Room {
            name: r.clone(),
            capacity: *cap,
            building: None,
            features: Vec::new(),
        });
    }
    let mut first = Vec::new();
    for (ci, c) in inst.courses.iter().enumerate() {
        m.subjects.push(c.name.clone());
        first.push(m.activities.len());
        let students: Vec<usize> = (0..inst.curricula.len())
            .filter(|&q| inst.curricula[q].courses.contains(&ci))
            .collect();
        for _ in 0..c.lectures {
            m.activities.push(Activity {
                id: m.activities.len() as u64 + 1,
                duration: 1,
                teachers: vec![teacher_index[c.teacher.as_str()]],
                subject: Some(ci),
                students: students.clone(),
                n_students: c.students,
                split_group: ci as u64 + 1,
                needs_room: true,
                ..Activity::default()
            });
        }
    }
    for (ci, c) in inst.courses.iter().enumerate() {
        let acts: Vec<usize> = (first[ci]..first[ci] + c.lectures).collect();
        if acts.is_empty() {
            continue;
        }
        let forbidden: BTreeSet<(usize, usize)> = inst
            .unavailability
            .iter()
            .filter(|u| u.0 == ci)
            .map(|u| (u.1, u.2))
            .collect();
        if !forbidden.is_empty() {
            let slots = (0..inst.days)
                .flat_map(|d| (0..inst.periods_per_day).map(move |p| (d, p)))
                .filter(|s| !forbidden.contains(s))
                .collect();
            m.constraints.push(Constraint {
                weight: Weight::Hard,
                kind: ConstraintKind::PreferredStartingTimes {
                    activities: acts.clone(),
                    slots,
                },
            });
        }
        if c.min_working_days > 1 {
            m.constraints.push(Constraint {
                weight: Weight::Soft(5),
                kind: ConstraintKind::MinWorkingDays {
                    activities: acts.clone(),
                    min: c.min_working_days,
                },
            });
        }
        if acts.len() > 1 {
            m.constraints.push(Constraint {
                weight: Weight::Soft(1),
                kind: ConstraintKind::RoomStability { activities: acts },
            });
        }
    }
    for q in 0..inst.curricula.len() {
        m.constraints.push(Constraint {
            weight: Weight::Soft(2),
            kind: ConstraintKind::CurriculumCompactness { students: q },
        });
    }
    m
}

/// Convert a model solution (activities in course order) to lectures.
pub fn lectures_from_solution(inst: &Instance, sol: &Solution) -> Vec<Lecture> {
    let mut out = Vec::new();
    let mut a = 0;
    for (c, course) in inst.courses.iter().enumerate() {
        for _ in 0..course.lectures {
            if let (Some(Some((d, p))), Some(Some(r))) = (sol.start.get(a), sol.room.get(a)) {
                out.push((c, *r, *d, *p));
            }
            a += 1;
        }
    }
    out
}

/// Convert lectures to a model solution (the k-th lecture of a course in the
/// list goes to the k-th activity of that course).
pub fn solution_from_lectures(inst: &Instance, lectures: &[Lecture]) -> Solution {
    let mut first = Vec::new();
    let mut n = 0;
    for c in &inst.courses {
        first.push(n);
        n += c.lectures;
    }
    let mut sol = Solution::empty(n);
    let mut used = vec![0usize; inst.courses.len()];
    for &(c, r, d, p) in lectures {
        if c < inst.courses.len() && used[c] < inst.courses[c].lectures {
            let a = first[c] + used[c];
            sol.start[a] = Some((d, p));
            sol.room[a] = Some(r);
            used[c] += 1;
        }
    }
    sol
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOY: &str = "Name: Toy
Courses: 4
Rooms: 2
Days: 2
Periods_per_day: 3
Curricula: 2
Constraints: 2

COURSES:
A tA 3 2 30
B tB 2 2 50
C tA 1 1 20
D tD 2 1 10

ROOMS:
r1 40
r2 20

CURRICULA:
q1 2 A B
q2 2 C D

UNAVAILABILITY_CONSTRAINTS:
A 1 2
D 0 0

END.
";

    #[test]
    fn parses_and_round_trips() {
        let inst = read_ctt(TOY).unwrap();
        assert_eq!(inst.courses.len(), 4);
        assert_eq!(inst.curricula[0].courses, vec![0, 1]);
        let again = read_ctt(&write_ctt(&inst)).unwrap();
        assert_eq!(inst, again);
    }

    #[test]
    fn scores_a_hand_computed_solution() {
        let inst = read_ctt(TOY).unwrap();
        // A: r1 d0p0, r1 d0p1, r2 d0p2  -> 1 day (mwd 2: 1 missing), 2 rooms (stability 1)
        // B: r1 d1p0, r1 d1p1           -> capacity 10+10, 1 day (1 missing); A in r2 also 10 over
        // C: r2 d1p2                    -> fine
        // D: r2 d0p0                    -> unavailable (1), room r2 fine
        let text = "A r1 0 0\nA r1 0 1\nA r2 0 2\nB r1 1 0\nB r1 1 1\nC r2 1 2\nD r2 0 0\n";
        let lec = read_solution(&inst, text).unwrap();
        let s = score(&inst, &lec);
        assert_eq!(s.lectures, 1, "D has one lecture missing");
        assert_eq!(s.availability, 1);
        assert_eq!(s.conflicts, 0);
        assert_eq!(s.room_occupancy, 0);
        assert_eq!(
            s.room_capacity, 30,
            "A in r2: 10 over; B twice in r1: 2 x 10 over"
        );
        assert_eq!(s.min_working_days, 2);
        assert_eq!(s.room_stability, 1);
        // q1: A at d0 p0,p1,p2 (none isolated), B at d1 p0,p1 (none isolated)
        // q2: C at d1 p2 isolated, D at d0 p0 isolated
        assert_eq!(s.curriculum_compactness, 2);
        assert_eq!(s.soft(), 30 + 10 + 4 + 1);
        assert_eq!(write_solution(&inst, &lec), text);
    }

    #[test]
    fn conflicts_and_occupancy() {
        let inst = read_ctt(TOY).unwrap();
        // A and C share teacher tA; A and B share q1; both in r1 at d0p0.
        let lec = vec![(0, 0, 0, 0), (2, 0, 0, 0), (1, 1, 0, 0)];
        let s = score(&inst, &lec);
        assert_eq!(s.conflicts, 2);
        assert_eq!(s.room_occupancy, 1);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let bad = TOY.replace("B tB 2 2 50", "B tB two 2 50");
        match read_ctt(&bad) {
            Err(Error::Syntax { line, column, .. }) => {
                assert_eq!(line, 11);
                assert_eq!(column, 6);
            }
            other => panic!("unexpected {other:?}"),
        }
        let bad = TOY.replace("q2 2 C D", "q2 2 C E");
        match read_ctt(&bad) {
            Err(Error::Unknown { name, line, .. }) => {
                assert_eq!(name, "E");
                assert_eq!(line, 21);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
