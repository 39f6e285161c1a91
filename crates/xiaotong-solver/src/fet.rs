//! Reading FET (`.fet`) files into a [`Model`] and writing solutions back as
//! FET files with every activity's time and room locked.

use crate::error::{Error, Result};
use crate::model::*;
use crate::xml::{self, Element};
use std::collections::{BTreeMap, HashMap};

/// Options of the FET reader.
#[derive(Debug, Clone, Default)]
pub struct FetOptions {
    /// Skip constraint types this solver does not implement instead of refusing the file.
    pub ignore_unsupported: bool,
}

/// The constraint types the reader understands.
pub const SUPPORTED: &[&str] = &[
    "ConstraintBasicCompulsoryTime",
    "ConstraintBasicCompulsorySpace",
    "ConstraintMinDaysBetweenActivities",
    "ConstraintTeacherNotAvailableTimes",
    "ConstraintBreakTimes",
    "ConstraintActivityPreferredStartingTime",
    "ConstraintStudentsMaxGapsPerWeek",
    "ConstraintStudentsSetNotAvailableTimes",
    "ConstraintSubjectPreferredRoom",
    "ConstraintActivitiesPreferredStartingTimes",
    "ConstraintActivitiesPreferredTimeSlots",
    "ConstraintTeachersMaxGapsPerWeek",
    "ConstraintSubjectPreferredRooms",
    "ConstraintTeachersMinHoursDaily",
    "ConstraintActivitiesSameStartingTime",
    "ConstraintStudentsMinHoursDaily",
    "ConstraintTeacherMaxDaysPerWeek",
    "ConstraintActivityPreferredRoom",
    "ConstraintStudentsEarlyMaxBeginningsAtSecondHour",
    "ConstraintRoomNotAvailableTimes",
    "ConstraintTeachersMaxHoursDaily",
    "ConstraintTeacherMaxHoursDaily",
    "ConstraintTeachersMaxGapsPerDay",
    "ConstraintTeacherMaxGapsPerWeek",
    "ConstraintStudentsSetHomeRoom",
    "ConstraintActivityPreferredStartingTimes",
    "ConstraintTeacherHomeRoom",
    "ConstraintActivityPreferredTimeSlots",
    "ConstraintStudentsSetMinHoursDaily",
    "ConstraintTeacherMinHoursDaily",
    "ConstraintTwoActivitiesConsecutive",
    "ConstraintStudentsSetMaxGapsPerWeek",
    "ConstraintActivityPreferredRooms",
    "ConstraintActivityEndsStudentsDay",
    "ConstraintActivitiesNotOverlapping",
    "ConstraintStudentsMaxHoursDaily",
    "ConstraintStudentsSetMaxHoursDaily",
    "ConstraintTeacherMaxGapsPerDay",
    "ConstraintTeachersMaxDaysPerWeek",
];

/// Read a `.fet` file from disk.
pub fn read_file(path: &std::path::Path, opts: &FetOptions) -> Result<Model> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut m = read_str(&text, opts)?;
    if m.name.is_empty() {
        m.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    Ok(m)
}

fn unknown(kind: &'static str, name: &str, at: &Element) -> Error {
    Error::Unknown {
        kind,
        name: name.to_string(),
        line: at.line,
        column: at.column,
    }
}

struct Names {
    map: HashMap<String, usize>,
}

impl Names {
    fn new<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        let mut map = HashMap::new();
        for (i, n) in names.enumerate() {
            map.entry(n.trim().to_string()).or_insert(i);
        }
        Names { map }
    }
    fn get(&self, name: &str) -> Option<usize> {
        self.map.get(name.trim()).copied()
    }
}

struct Ctx<'m> {
    m: &'m Model,
    days: Names,
    hours: Names,
    teachers: Names,
    subjects: Names,
    tags: Names,
    students: Names,
    rooms: Names,
    /// FET activity id → index, or None for an inactive activity.
    acts: HashMap<u64, Option<usize>>,
    /// An old FET-5 Morocco mornings-afternoons file: FET converts teachers'
    /// max days per week to real days and max hours daily to hours per real day.
    morocco: bool,
}

impl Ctx<'_> {
    fn lookup(
        &self,
        names: &Names,
        kind: &'static str,
        el: &Element,
        child: &str,
    ) -> Result<usize> {
        let c = el
            .child(child)
            .ok_or_else(|| el.syntax(format!("<{}> lacks <{child}>", el.name)))?;
        let t = c.text.trim();
        names.get(t).ok_or_else(|| unknown(kind, t, c))
    }
    fn teacher(&self, el: &Element, child: &str) -> Result<usize> {
        self.lookup(&self.teachers, "teacher", el, child)
    }
    fn students(&self, el: &Element, child: &str) -> Result<usize> {
        self.lookup(&self.students, "students set", el, child)
    }
    fn room(&self, el: &Element, child: &str) -> Result<usize> {
        self.lookup(&self.rooms, "room", el, child)
    }
    fn subject(&self, el: &Element, child: &str) -> Result<usize> {
        self.lookup(&self.subjects, "subject", el, child)
    }
    /// Activity by id; Ok(None) when the activity is inactive.
    fn activity_el(&self, c: &Element) -> Result<Option<usize>> {
        let t = c.text.trim();
        let id: u64 = t
            .parse()
            .map_err(|_| c.syntax(format!("\"{t}\" is not an activity id")))?;
        match self.acts.get(&id) {
            Some(x) => Ok(*x),
            None => Err(unknown("activity", t, c)),
        }
    }
    fn activity(&self, el: &Element, child: &str) -> Result<Option<usize>> {
        let c = el
            .child(child)
            .ok_or_else(|| el.syntax(format!("<{}> lacks <{child}>", el.name)))?;
        self.activity_el(c)
    }
    fn activities(&self, el: &Element) -> Result<Vec<usize>> {
        let mut v = Vec::new();
        for c in el.children_named("Activity_Id") {
            if let Some(a) = self.activity_el(c)? {
                v.push(a);
            }
        }
        Ok(v)
    }
    /// Slots from children `outer` each holding `day_tag` and `hour_tag`.
    /// A missing day or hour means "every day" / "every hour".
    fn slots(&self, el: &Element, outer: &str, day_tag: &str, hour_tag: &str) -> Result<Vec<Slot>> {
        let mut v = Vec::new();
        for c in el.children_named(outer) {
            self.slot_pair(c, day_tag, hour_tag, &mut v)?;
        }
        Ok(v)
    }
    fn slot_pair(
        &self,
        c: &Element,
        day_tag: &str,
        hour_tag: &str,
        out: &mut Vec<Slot>,
    ) -> Result<()> {
        let day = match c.child(day_tag) {
            Some(d) if !d.text.trim().is_empty() => Some(
                self.days
                    .get(&d.text)
                    .ok_or_else(|| unknown("day", d.text.trim(), d))?,
            ),
            _ => None,
        };
        let hour = match c.child(hour_tag) {
            Some(h) if !h.text.trim().is_empty() => Some(
                self.hours
                    .get(&h.text)
                    .ok_or_else(|| unknown("hour", h.text.trim(), h))?,
            ),
            _ => None,
        };
        for d in 0..self.m.days.len() {
            if day.is_some_and(|x| x != d) {
                continue;
            }
            for p in 0..self.m.periods.len() {
                if hour.is_none_or(|x| x == p) {
                    out.push((d, p));
                }
            }
        }
        Ok(())
    }
    fn num(&self, el: &Element, child: &str) -> Result<usize> {
        el.child_parse::<usize>(child)?
            .ok_or_else(|| el.syntax(format!("<{}> lacks <{child}>", el.name)))
    }
    fn flag(&self, el: &Element, child: &str) -> bool {
        el.child_text(child)
            .is_some_and(|t| t.eq_ignore_ascii_case("true"))
    }
    /// Activities matched by the teacher/students/subject/tag/duration filter of
    /// the "Activities…" constraints.
    fn filter(&self, el: &Element) -> Result<Vec<usize>> {
        let opt = |tag: &str, names: &Names, kind: &'static str| -> Result<Option<usize>> {
            match el.child(tag) {
                Some(c) if !c.text.trim().is_empty() => Ok(Some(
                    names
                        .get(&c.text)
                        .ok_or_else(|| unknown(kind, c.text.trim(), c))?,
                )),
                _ => Ok(None),
            }
        };
        let t = opt("Teacher_Name", &self.teachers, "teacher")?;
        let s = opt("Students_Name", &self.students, "students set")?;
        let sub = opt("Subject_Name", &self.subjects, "subject")?;
        let tag = opt("Activity_Tag_Name", &self.tags, "activity tag")?;
        let dur = el.child_parse::<usize>("Duration")?;
        Ok(self
            .m
            .activities
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                t.is_none_or(|t| a.teachers.contains(&t))
                    && s.is_none_or(|s| {
                        // FET matches an activity whose students share a subgroup with the set.
                        let want = &self.m.students[s].atoms;
                        a.students
                            .iter()
                            .any(|&x| self.m.students[x].atoms.iter().any(|y| want.contains(y)))
                    })
                    && sub.is_none_or(|x| a.subject == Some(x))
                    && tag.is_none_or(|x| a.tags.contains(&x))
                    && dur.is_none_or(|d| a.duration == d)
            })
            .map(|(i, _)| i)
            .collect())
    }
}

fn names_of(list: Option<&Element>, item: &str) -> Vec<(String, Element)> {
    list.map(|l| {
        l.children_named(item)
            // Keep names exactly as written: FET does not trim them, and the
            // writer must reproduce them (lookups trim both sides).
            .map(|e| {
                (
                    e.child("Name").map(|n| n.text.clone()).unwrap_or_default(),
                    e.clone(),
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Parse the text of a `.fet` file.
pub fn read_str(text: &str, opts: &FetOptions) -> Result<Model> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = xml::parse(text)?;
    if root.name != "fet" {
        return Err(root.syntax(format!("the root element is <{}>, not <fet>", root.name)));
    }
    let mut m = Model {
        name: root
            .child_text("Institution_Name")
            .unwrap_or("")
            .to_string(),
        ..Model::default()
    };
    // FET 6 mornings-afternoons mode lists half days; its "min days between
    // activities" counts real days. FET converts the files of the older
    // Algerian/Moroccan FET 5 variants (version "…-algeria…", "…-morocco",
    // "…-ma…") to this mode.
    let version = fet_version(text);
    let morocco = version.contains("-morocco") || version.contains("-ma");
    let ma = root.child_text("Mode") == Some("Mornings_Afternoons")
        || morocco
        || version.contains("-algeria");
    if ma {
        m.days_per_real_day = 2;
    }
    m.days = names_of(root.child("Days_List"), "Day")
        .into_iter()
        .map(|x| x.0)
        .collect();
    m.periods = names_of(root.child("Hours_List"), "Hour")
        .into_iter()
        .map(|x| x.0)
        .collect();
    m.subjects = names_of(root.child("Subjects_List"), "Subject")
        .into_iter()
        .map(|x| x.0)
        .collect();
    m.tags = names_of(root.child("Activity_Tags_List"), "Activity_Tag")
        .into_iter()
        .map(|x| x.0)
        .collect();
    let subjects = Names::new(m.subjects.iter().map(String::as_str));
    let mut behaviors = Vec::new();
    // Old Morocco files list the teachers who may work both halves of one
    // or two real days; FET makes every other teacher exclusive.
    let teacher_els = names_of(root.child("Teachers_List"), "Teacher");
    let mut morocco_exceptions: HashMap<String, usize> = HashMap::new();
    if version.contains("-morocco") {
        for (list, max) in [
            ("Exception_Teachers_One_Day_List", 1),
            ("Exception_Teachers_Two_Days_List", 2),
        ] {
            for t in root
                .child(list)
                .iter()
                .flat_map(|l| l.children_named("Teacher"))
            {
                let name = t.text.trim();
                if !teacher_els.iter().any(|(n, _)| n.trim() == name) {
                    return Err(unknown("teacher", name, t));
                }
                morocco_exceptions.insert(name.to_string(), max);
            }
        }
    }
    for (name, el) in teacher_els {
        let mut q = Vec::new();
        if let Some(qs) = el.child("Qualified_Subjects") {
            for s in qs.children_named("Qualified_Subject") {
                q.push(
                    subjects
                        .get(&s.text)
                        .ok_or_else(|| unknown("subject", s.text.trim(), s))?,
                );
            }
        }
        if ma {
            // On how many real days the teacher may work both halves.
            let full_days = match el.child_text("Mornings_Afternoons_Behavior") {
                Some("Exclusive") => Some(0),
                Some("One day exception") => Some(1),
                Some("Two days exception") => Some(2),
                Some(_) => None,
                None if version.contains("-morocco") => {
                    Some(morocco_exceptions.get(name.trim()).copied().unwrap_or(0))
                }
                None => None,
            };
            if let Some(max) = full_days {
                behaviors.push(Constraint {
                    weight: Weight::Hard,
                    kind: ConstraintKind::MaxMorningAndAfternoonDays {
                        who: Who::Teacher(m.teachers.len()),
                        max,
                    },
                });
            }
        }
        m.teachers.push(Teacher {
            name,
            qualified_subjects: q,
        });
    }
    read_students(&root, &mut m)?;
    let mut building_names = HashMap::new();
    for (name, _) in names_of(root.child("Buildings_List"), "Building") {
        building_names.insert(name.trim().to_string(), m.buildings.len());
        m.buildings.push(Building { name, campus: None });
    }
    for (name, el) in names_of(root.child("Rooms_List"), "Room") {
        if el.child_text("Virtual") == Some("true") {
            return Err(el.syntax(format!("virtual room \"{name}\" is not supported")));
        }
        let building = match el.child_text("Building") {
            Some(b) if !b.is_empty() => Some(
                *building_names
                    .get(b)
                    .ok_or_else(|| unknown("building", b, el.child("Building").unwrap_or(&el)))?,
            ),
            _ => None,
        };
        let capacity = el
            .child_parse::<u64>("Capacity")?
            .unwrap_or(u32::MAX as u64)
            .min(u32::MAX as u64) as u32;
        m.rooms.push(Room {
            name,
            capacity,
            building,
            features: Vec::new(),
        });
    }
    if m.days.is_empty() || m.periods.is_empty() {
        return Err(root.syntax("the file defines no days or no hours"));
    }
    if m.periods.len() > 64 {
        return Err(root.syntax("more than 64 hours per day are not supported"));
    }
    let teachers = Names::new(m.teachers.iter().map(|t| t.name.as_str()));
    let students = Names::new(m.students.iter().map(|s| s.name.as_str()));
    let tags = Names::new(m.tags.iter().map(String::as_str));
    let mut acts = HashMap::new();
    if let Some(list) = root.child("Activities_List") {
        for el in list.children_named("Activity") {
            let id: u64 = el
                .child_parse("Id")?
                .ok_or_else(|| el.syntax("activity without <Id>"))?;
            if acts.contains_key(&id) {
                return Err(el.syntax(format!("activity id {id} is used twice")));
            }
            if el.child_text("Active") == Some("false") {
                acts.insert(id, None);
                continue;
            }
            let mut a = Activity {
                id,
                duration: el.child_parse("Duration")?.unwrap_or(1),
                split_group: el.child_parse("Activity_Group_Id")?.unwrap_or(0),
                ..Activity::default()
            };
            if a.duration == 0 || a.duration > m.periods.len() {
                return Err(el.syntax(format!(
                    "activity {id} lasts {} hours but a day has {}",
                    a.duration,
                    m.periods.len()
                )));
            }
            for c in &el.children {
                let t = c.text.trim();
                match c.name.as_str() {
                    "Teacher" => a
                        .teachers
                        .push(teachers.get(t).ok_or_else(|| unknown("teacher", t, c))?),
                    "Students" => a.students.push(
                        students
                            .get(t)
                            .ok_or_else(|| unknown("students set", t, c))?,
                    ),
                    "Subject" if !t.is_empty() => {
                        a.subject = Some(subjects.get(t).ok_or_else(|| unknown("subject", t, c))?)
                    }
                    "Activity_Tag" => a
                        .tags
                        .push(tags.get(t).ok_or_else(|| unknown("activity tag", t, c))?),
                    _ => {}
                }
            }
            a.n_students = match el.child_parse::<u32>("Number_Of_Students")? {
                Some(n) => n,
                None => a
                    .students
                    .iter()
                    .map(|&s| m.students[s].size)
                    .fold(0u32, |x, y| x.saturating_add(y)),
            };
            acts.insert(id, Some(m.activities.len()));
            m.activities.push(a);
        }
    }
    let ctx = Ctx {
        m: &m,
        days: Names::new(m.days.iter().map(String::as_str)),
        hours: Names::new(m.periods.iter().map(String::as_str)),
        teachers,
        subjects,
        tags,
        students,
        rooms: Names::new(m.rooms.iter().map(|r| r.name.as_str())),
        acts,
        morocco,
    };
    let mut constraints = behaviors;
    let mut unsupported: BTreeMap<String, usize> = BTreeMap::new();
    for list in ["Time_Constraints_List", "Space_Constraints_List"] {
        let Some(list) = root.child(list) else {
            continue;
        };
        for el in &list.children {
            if el.child_text("Active") == Some("false") {
                continue;
            }
            if !SUPPORTED.contains(&el.name.as_str()) {
                *unsupported.entry(el.name.clone()).or_default() += 1;
                continue;
            }
            let pct: f64 = el.child_parse("Weight_Percentage")?.unwrap_or(100.0);
            if !(0.0..=100.0).contains(&pct) {
                return Err(el.syntax(format!("weight {pct} is not a percentage")));
            }
            if pct <= 0.0 {
                // FET still requires parts on the same day to be adjacent.
                if el.name == "ConstraintMinDaysBetweenActivities"
                    && ctx.flag(el, "Consecutive_If_Same_Day")
                {
                    if let Some(ConstraintKind::MinDaysBetween { activities, .. }) =
                        read_constraint(&ctx, el)?
                    {
                        constraints.push(Constraint {
                            weight: Weight::Hard,
                            kind: ConstraintKind::MinDaysBetween {
                                activities,
                                min_days: 0,
                                consecutive_if_same_day: true,
                            },
                        });
                    }
                }
                continue;
            }
            let weight = Weight::from_percentage(pct);
            if let Some(kind) = read_constraint(&ctx, el)? {
                constraints.push(Constraint { weight, kind });
            }
        }
    }
    if !unsupported.is_empty() && !opts.ignore_unsupported {
        let list: Vec<String> = unsupported
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        return Err(Error::Unsupported(list.join(", ")));
    }
    m.constraints = constraints;
    m.ignored = unsupported.into_iter().collect();
    m.validate()?;
    Ok(m)
}

fn read_students(root: &Element, m: &mut Model) -> Result<()> {
    let Some(list) = root.child("Students_List") else {
        return Ok(());
    };
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut atom_index: HashMap<String, usize> = HashMap::new();
    // Returns the set index; creates it or merges atoms when names repeat.
    fn add_set(
        m: &mut Model,
        index: &mut HashMap<String, usize>,
        name: &str,
        size: u32,
        atoms: Vec<usize>,
    ) -> usize {
        let key = name.trim().to_string();
        if let Some(&i) = index.get(&key) {
            for a in atoms {
                if !m.students[i].atoms.contains(&a) {
                    m.students[i].atoms.push(a);
                }
            }
            return i;
        }
        index.insert(key, m.students.len());
        m.students.push(StudentsSet {
            name: name.trim().to_string(),
            size,
            atoms,
        });
        m.students.len() - 1
    }
    let mut atom = |m: &mut Model, name: &str| -> usize {
        let key = name.trim().to_string();
        if let Some(&i) = atom_index.get(&key) {
            return i;
        }
        atom_index.insert(key.clone(), m.atoms.len());
        m.atoms.push(key);
        m.atoms.len() - 1
    };
    for y in list.children_named("Year") {
        let yname = y.child_text("Name").unwrap_or("").to_string();
        let ysize = y.child_parse::<u32>("Number_of_Students")?.unwrap_or(0);
        let mut yatoms = Vec::new();
        for g in y.children_named("Group") {
            let gname = g.child_text("Name").unwrap_or("").to_string();
            let gsize = g.child_parse::<u32>("Number_of_Students")?.unwrap_or(0);
            let mut gatoms = Vec::new();
            for s in g.children_named("Subgroup") {
                let sname = s.child_text("Name").unwrap_or("").to_string();
                let ssize = s.child_parse::<u32>("Number_of_Students")?.unwrap_or(0);
                let a = atom(m, &sname);
                add_set(m, &mut index, &sname, ssize, vec![a]);
                gatoms.push(a);
            }
            if gatoms.is_empty() {
                gatoms.push(atom(m, &gname));
            }
            yatoms.extend(gatoms.iter().copied());
            add_set(m, &mut index, &gname, gsize, gatoms);
        }
        if yatoms.is_empty() {
            yatoms.push(atom(m, &yname));
        }
        yatoms.sort_unstable();
        yatoms.dedup();
        add_set(m, &mut index, &yname, ysize, yatoms);
    }
    Ok(())
}

fn who_teacher(ctx: &Ctx, el: &Element) -> Result<Who> {
    Ok(Who::Teacher(ctx.teacher(el, "Teacher_Name")?))
}

fn read_constraint(ctx: &Ctx, el: &Element) -> Result<Option<ConstraintKind>> {
    use ConstraintKind as K;
    let acts_by_subject = |s: usize| -> Vec<usize> {
        (0..ctx.m.activities.len())
            .filter(|&a| ctx.m.activities[a].subject == Some(s))
            .collect()
    };
    let k = match el.name.as_str() {
        "ConstraintBasicCompulsoryTime" | "ConstraintBasicCompulsorySpace" => return Ok(None),
        "ConstraintMinDaysBetweenActivities" => {
            let activities = ctx.activities(el)?;
            if activities.len() < 2 {
                return Ok(None);
            }
            K::MinDaysBetween {
                activities,
                min_days: ctx.num(el, "MinDays")?,
                consecutive_if_same_day: ctx.flag(el, "Consecutive_If_Same_Day"),
            }
        }
        "ConstraintTeacherNotAvailableTimes" => K::TeacherNotAvailable {
            teacher: ctx.teacher(el, "Teacher")?,
            slots: ctx.slots(el, "Not_Available_Time", "Day", "Hour")?,
        },
        "ConstraintStudentsSetNotAvailableTimes" => K::StudentsNotAvailable {
            students: ctx.students(el, "Students")?,
            slots: ctx.slots(el, "Not_Available_Time", "Day", "Hour")?,
        },
        "ConstraintRoomNotAvailableTimes" => K::RoomNotAvailable {
            room: ctx.room(el, "Room")?,
            slots: ctx.slots(el, "Not_Available_Time", "Day", "Hour")?,
        },
        "ConstraintBreakTimes" => K::BreakTimes(ctx.slots(el, "Break_Time", "Day", "Hour")?),
        "ConstraintActivityPreferredStartingTime" => {
            let Some(a) = ctx.activity(el, "Activity_Id")? else {
                return Ok(None);
            };
            let mut slots = Vec::new();
            ctx.slot_pair(el, "Preferred_Day", "Preferred_Hour", &mut slots)?;
            K::PreferredStartingTimes {
                activities: vec![a],
                slots,
            }
        }
        "ConstraintActivityPreferredStartingTimes" => {
            let Some(a) = ctx.activity(el, "Activity_Id")? else {
                return Ok(None);
            };
            K::PreferredStartingTimes {
                activities: vec![a],
                slots: ctx.slots(
                    el,
                    "Preferred_Starting_Time",
                    "Preferred_Starting_Day",
                    "Preferred_Starting_Hour",
                )?,
            }
        }
        "ConstraintActivitiesPreferredStartingTimes" => K::PreferredStartingTimes {
            activities: ctx.filter(el)?,
            slots: ctx.slots(
                el,
                "Preferred_Starting_Time",
                "Preferred_Starting_Day",
                "Preferred_Starting_Hour",
            )?,
        },
        "ConstraintActivityPreferredTimeSlots" => {
            let Some(a) = ctx.activity(el, "Activity_Id")? else {
                return Ok(None);
            };
            K::PreferredTimeSlots {
                activities: vec![a],
                slots: ctx.slots(el, "Preferred_Time_Slot", "Preferred_Day", "Preferred_Hour")?,
            }
        }
        "ConstraintActivitiesPreferredTimeSlots" => K::PreferredTimeSlots {
            activities: ctx.filter(el)?,
            slots: ctx.slots(el, "Preferred_Time_Slot", "Preferred_Day", "Preferred_Hour")?,
        },
        "ConstraintActivitiesSameStartingTime" => {
            let activities = ctx.activities(el)?;
            if activities.len() < 2 {
                return Ok(None);
            }
            K::SameStartingTime { activities }
        }
        "ConstraintActivitiesNotOverlapping" => {
            let activities = ctx.activities(el)?;
            if activities.len() < 2 {
                return Ok(None);
            }
            K::NotOverlapping { activities }
        }
        "ConstraintTwoActivitiesConsecutive" => {
            let (Some(first), Some(second)) = (
                ctx.activity(el, "First_Activity_Id")?,
                ctx.activity(el, "Second_Activity_Id")?,
            ) else {
                return Ok(None);
            };
            K::TwoConsecutive { first, second }
        }
        "ConstraintActivityEndsStudentsDay" => {
            let Some(activity) = ctx.activity(el, "Activity_Id")? else {
                return Ok(None);
            };
            K::EndsStudentsDay { activity }
        }
        "ConstraintStudentsMaxGapsPerWeek" => K::MaxGapsPerWeek {
            who: Who::AllStudents,
            max: ctx.num(el, "Max_Gaps")?,
        },
        "ConstraintStudentsSetMaxGapsPerWeek" => K::MaxGapsPerWeek {
            who: Who::Students(ctx.students(el, "Students")?),
            max: ctx.num(el, "Max_Gaps")?,
        },
        "ConstraintTeachersMaxGapsPerWeek" => K::MaxGapsPerWeek {
            who: Who::AllTeachers,
            max: ctx.num(el, "Max_Gaps")?,
        },
        "ConstraintTeacherMaxGapsPerWeek" => K::MaxGapsPerWeek {
            who: who_teacher(ctx, el)?,
            max: ctx.num(el, "Max_Gaps")?,
        },
        "ConstraintTeachersMaxGapsPerDay" => K::MaxGapsPerDay {
            who: Who::AllTeachers,
            max: ctx.num(el, "Max_Gaps")?,
        },
        "ConstraintTeacherMaxGapsPerDay" => K::MaxGapsPerDay {
            who: who_teacher(ctx, el)?,
            max: ctx.num(el, "Max_Gaps")?,
        },
        "ConstraintTeachersMinHoursDaily" => K::MinHoursDaily {
            who: Who::AllTeachers,
            min: ctx.num(el, "Minimum_Hours_Daily")?,
            allow_empty_days: ctx.flag(el, "Allow_Empty_Days"),
        },
        "ConstraintTeacherMinHoursDaily" => K::MinHoursDaily {
            who: who_teacher(ctx, el)?,
            min: ctx.num(el, "Minimum_Hours_Daily")?,
            allow_empty_days: ctx.flag(el, "Allow_Empty_Days"),
        },
        "ConstraintStudentsMinHoursDaily" => K::MinHoursDaily {
            who: Who::AllStudents,
            min: ctx.num(el, "Minimum_Hours_Daily")?,
            allow_empty_days: ctx.flag(el, "Allow_Empty_Days"),
        },
        "ConstraintStudentsSetMinHoursDaily" => K::MinHoursDaily {
            who: Who::Students(ctx.students(el, "Students")?),
            min: ctx.num(el, "Minimum_Hours_Daily")?,
            allow_empty_days: ctx.flag(el, "Allow_Empty_Days"),
        },
        "ConstraintTeachersMaxHoursDaily" | "ConstraintTeacherMaxHoursDaily" => {
            let who = if el.name == "ConstraintTeachersMaxHoursDaily" {
                Who::AllTeachers
            } else {
                who_teacher(ctx, el)?
            };
            let max = ctx.num(el, "Maximum_Hours_Daily")?;
            if ctx.morocco {
                K::MaxHoursPerRealDay { who, max }
            } else {
                K::MaxHoursDaily { who, max }
            }
        }
        "ConstraintStudentsMaxHoursDaily" => K::MaxHoursDaily {
            who: Who::AllStudents,
            max: ctx.num(el, "Maximum_Hours_Daily")?,
        },
        "ConstraintStudentsSetMaxHoursDaily" => K::MaxHoursDaily {
            who: Who::Students(ctx.students(el, "Students")?),
            max: ctx.num(el, "Maximum_Hours_Daily")?,
        },
        "ConstraintTeacherMaxDaysPerWeek" | "ConstraintTeachersMaxDaysPerWeek" => {
            let who = if el.name == "ConstraintTeachersMaxDaysPerWeek" {
                Who::AllTeachers
            } else {
                who_teacher(ctx, el)?
            };
            let max = ctx.num(el, "Max_Days_Per_Week")?;
            if ctx.morocco {
                K::MaxRealDaysPerWeek { who, max }
            } else {
                K::MaxDaysPerWeek { who, max }
            }
        }
        "ConstraintStudentsEarlyMaxBeginningsAtSecondHour" => K::EarlyMaxBeginningsAtSecondHour {
            who: Who::AllStudents,
            max: ctx.num(el, "Max_Beginnings_At_Second_Hour")?,
        },
        "ConstraintActivityPreferredRoom" => {
            let Some(a) = ctx.activity(el, "Activity_Id")? else {
                return Ok(None);
            };
            K::PreferredRooms {
                activities: vec![a],
                rooms: vec![ctx.room(el, "Room")?],
            }
        }
        "ConstraintActivityPreferredRooms" => {
            let Some(a) = ctx.activity(el, "Activity_Id")? else {
                return Ok(None);
            };
            K::PreferredRooms {
                activities: vec![a],
                rooms: room_list(ctx, el)?,
            }
        }
        "ConstraintSubjectPreferredRoom" => K::PreferredRooms {
            activities: acts_by_subject(ctx.subject(el, "Subject")?),
            rooms: vec![ctx.room(el, "Room")?],
        },
        "ConstraintSubjectPreferredRooms" => K::PreferredRooms {
            activities: acts_by_subject(ctx.subject(el, "Subject")?),
            rooms: room_list(ctx, el)?,
        },
        "ConstraintTeacherHomeRoom" => K::TeacherHomeRoom {
            teacher: ctx.teacher(el, "Teacher")?,
            room: ctx.room(el, "Room")?,
        },
        "ConstraintStudentsSetHomeRoom" => K::StudentsHomeRoom {
            students: ctx.students(el, "Students")?,
            room: ctx.room(el, "Room")?,
        },
        other => return Err(el.syntax(format!("constraint type {other} is not handled"))),
    };
    Ok(Some(k))
}

/// The `version` attribute of the `<fet>` root element ("" if absent).
fn fet_version(text: &str) -> &str {
    let Some(i) = text.find("<fet") else {
        return "";
    };
    let head = &text[i..];
    let head = &head[..head.find('>').unwrap_or(head.len())];
    let Some(j) = head.find("version=") else {
        return "";
    };
    let rest = &head[j + 8..];
    let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return "";
    };
    let rest = &rest[1..];
    &rest[..rest.find(q).unwrap_or(rest.len())]
}

fn room_list(ctx: &Ctx, el: &Element) -> Result<Vec<usize>> {
    el.children_named("Preferred_Room")
        .map(|c| {
            ctx.rooms
                .get(&c.text)
                .ok_or_else(|| unknown("room", c.text.trim(), c))
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Write `source` (the original `.fet` text the model was read from) back with
/// a locked preferred starting time and, where assigned, a locked preferred
/// room for every placed activity, so that FET reproduces the timetable.
pub fn write_locked(source: &str, model: &Model, sol: &Solution) -> Result<String> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut time = String::new();
    let mut space = String::new();
    for (i, a) in model.activities.iter().enumerate() {
        if let Some(Some((d, p))) = sol.start.get(i) {
            let (Some(day), Some(hour)) = (model.days.get(*d), model.periods.get(*p)) else {
                return Err(Error::Invalid(format!(
                    "activity {} has a start outside the week",
                    a.id
                )));
            };
            time.push_str(&format!(
                "<ConstraintActivityPreferredStartingTime>\n\t<Weight_Percentage>100</Weight_Percentage>\n\t<Activity_Id>{}</Activity_Id>\n\t<Preferred_Day>{}</Preferred_Day>\n\t<Preferred_Hour>{}</Preferred_Hour>\n\t<Permanently_Locked>true</Permanently_Locked>\n\t<Active>true</Active>\n\t<Comments>xiaotong</Comments>\n</ConstraintActivityPreferredStartingTime>\n",
                a.id,
                escape(day),
                escape(hour)
            ));
        }
        if let Some(Some(r)) = sol.room.get(i) {
            let room = model
                .rooms
                .get(*r)
                .ok_or_else(|| Error::Invalid(format!("activity {} has an unknown room", a.id)))?;
            space.push_str(&format!(
                "<ConstraintActivityPreferredRoom>\n\t<Weight_Percentage>100</Weight_Percentage>\n\t<Activity_Id>{}</Activity_Id>\n\t<Room>{}</Room>\n\t<Permanently_Locked>true</Permanently_Locked>\n\t<Active>true</Active>\n\t<Comments>xiaotong</Comments>\n</ConstraintActivityPreferredRoom>\n",
                a.id,
                escape(&room.name)
            ));
        }
    }
    let mut out = insert_before(
        source,
        "</Time_Constraints_List>",
        "<Time_Constraints_List>",
        &time,
    )?;
    out = insert_before(
        &out,
        "</Space_Constraints_List>",
        "<Space_Constraints_List>",
        &space,
    )?;
    Ok(out)
}

fn insert_before(src: &str, close: &str, open: &str, what: &str) -> Result<String> {
    if let Some(pos) = src.rfind(close) {
        let mut s = String::with_capacity(src.len() + what.len());
        s.push_str(&src[..pos]);
        s.push_str(what);
        s.push_str(&src[pos..]);
        return Ok(s);
    }
    // An empty list written as <X_List/>, or no list at all.
    let empty = format!("{}/>", open.trim_end_matches('>'));
    if let Some(pos) = src.find(&empty) {
        return Ok(format!(
            "{}{open}\n{what}{close}{}",
            &src[..pos],
            &src[pos + empty.len()..]
        ));
    }
    let end = src
        .rfind("</fet>")
        .ok_or_else(|| Error::Invalid("the source has no </fet> end tag".into()))?;
    Ok(format!(
        "{}{open}\n{what}{close}\n{}",
        &src[..end],
        &src[end..]
    ))
}

/// Read the locked starting times and rooms of a FET file (as written by
/// [`write_locked`] or by FET's "timetable as data" export) as a solution of `model`.
pub fn read_locked_solution(text: &str, model: &Model) -> Result<Solution> {
    let other = read_str(
        text,
        &FetOptions {
            ignore_unsupported: true,
        },
    )?;
    let mut sol = Solution::empty(model.activities.len());
    let by_id: HashMap<u64, usize> = model
        .activities
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id, i))
        .collect();
    for c in &other.constraints {
        if !c.weight.is_hard() {
            continue;
        }
        match &c.kind {
            ConstraintKind::PreferredStartingTimes { activities, slots }
                if activities.len() == 1 && slots.len() == 1 =>
            {
                let id = other.activities[activities[0]].id;
                if let Some(&i) = by_id.get(&id) {
                    sol.start[i] = Some(slots[0]);
                }
            }
            ConstraintKind::PreferredRooms { activities, rooms }
                if activities.len() == 1 && rooms.len() == 1 =>
            {
                let id = other.activities[activities[0]].id;
                if let (Some(&i), Some(r)) = (by_id.get(&id), other.rooms.get(rooms[0])) {
                    sol.room[i] = model.rooms.iter().position(|x| x.name == r.name);
                }
            }
            _ => {}
        }
    }
    Ok(sol)
}
