//! The timetabling model: a week grid, resources, activities and weighted constraints.
//!
//! Everything refers to other entities by index into the model's vectors. Readers
//! (FET, ITC-2007) build a [`Model`]; the solver compiles it into its own
//! search representation.

use serde::{Deserialize, Serialize};

/// How much a constraint matters: hard (must hold, FET's 100%) or soft with a
/// cost per unit of violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Weight {
    Hard,
    Soft(u32),
}

impl Weight {
    /// FET's weight percentage: 100 is hard, anything else soft with a cost
    /// of the rounded percentage (at least 1).
    pub fn from_percentage(p: f64) -> Weight {
        if p >= 100.0 {
            Weight::Hard
        } else {
            Weight::Soft((p.round() as u32).max(1))
        }
    }

    pub fn is_hard(self) -> bool {
        matches!(self, Weight::Hard)
    }
}

/// A time slot: (day, period) indices.
pub type Slot = (usize, usize);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Teacher {
    pub name: String,
    /// Subjects the teacher may teach; empty means "not restricted".
    pub qualified_subjects: Vec<usize>,
}

/// A students set: a year, group or subgroup (FET), or a curriculum (ITC).
/// `atoms` are the indices of the smallest student units it contains; two
/// activities sharing an atom cannot overlap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StudentsSet {
    pub name: String,
    pub size: u32,
    pub atoms: Vec<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Building {
    pub name: String,
    /// The campus the building belongs to, if the institution has several.
    pub campus: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub name: String,
    pub capacity: u32,
    pub building: Option<usize>,
    /// Equipment/features the room offers ("projector", "lab", …).
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// The id in the source file (FET activity id, or a running number).
    pub id: u64,
    /// Duration in periods.
    pub duration: usize,
    pub teachers: Vec<usize>,
    pub subject: Option<usize>,
    pub tags: Vec<usize>,
    pub students: Vec<usize>,
    pub n_students: u32,
    /// Parts of one split activity share a non-zero group id (FET's Activity_Group_Id).
    pub split_group: u64,
    /// Features a room must have to host this activity.
    pub required_features: Vec<String>,
    /// Campus the activity must be held on (rooms of other campuses are excluded).
    pub campus: Option<String>,
    /// Whether the activity must get a room even without a room constraint.
    pub needs_room: bool,
}

/// Who a per-resource constraint applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Who {
    AllTeachers,
    Teacher(usize),
    AllStudents,
    Students(usize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConstraintKind {
    /// No activity may take place in these slots.
    BreakTimes(Vec<Slot>),
    TeacherNotAvailable {
        teacher: usize,
        slots: Vec<Slot>,
    },
    StudentsNotAvailable {
        students: usize,
        slots: Vec<Slot>,
    },
    RoomNotAvailable {
        room: usize,
        slots: Vec<Slot>,
    },
    /// Each listed activity must start at one of the slots.
    PreferredStartingTimes {
        activities: Vec<usize>,
        slots: Vec<Slot>,
    },
    /// Every period of each listed activity must be in the slots.
    PreferredTimeSlots {
        activities: Vec<usize>,
        slots: Vec<Slot>,
    },
    /// Pairs of the activities must be at least `min_days` days apart (the
    /// constraint's weight). With `consecutive_if_same_day`, two of them on
    /// the same day must also be adjacent; FET enforces that part whatever
    /// the weight (even 0%), so it is always hard.
    MinDaysBetween {
        activities: Vec<usize>,
        min_days: usize,
        consecutive_if_same_day: bool,
    },
    SameStartingTime {
        activities: Vec<usize>,
    },
    NotOverlapping {
        activities: Vec<usize>,
    },
    /// `second` starts right after `first` ends, on the same day.
    TwoConsecutive {
        first: usize,
        second: usize,
    },
    /// Nothing of the activity's students follows it on its day.
    EndsStudentsDay {
        activity: usize,
    },
    MaxHoursDaily {
        who: Who,
        max: usize,
    },
    MinHoursDaily {
        who: Who,
        min: usize,
        allow_empty_days: bool,
    },
    MaxGapsPerDay {
        who: Who,
        max: usize,
    },
    MaxGapsPerWeek {
        who: Who,
        max: usize,
    },
    MaxDaysPerWeek {
        who: Who,
        max: usize,
    },
    /// Mornings-afternoons mode (each "day" a half day): at most `max` real days
    /// with activities.
    MaxRealDaysPerWeek {
        who: Who,
        max: usize,
    },
    /// Mornings-afternoons mode: at most `max` periods in the two halves of a real day.
    MaxHoursPerRealDay {
        who: Who,
        max: usize,
    },
    /// Mornings-afternoons mode (FET's teacher "mornings-afternoons behavior"):
    /// at most `max` real days with activities in both the morning and the afternoon.
    MaxMorningAndAfternoonDays {
        who: Who,
        max: usize,
    },
    /// Students begin at the first period; at most `max` days begin at the second.
    EarlyMaxBeginningsAtSecondHour {
        who: Who,
        max: usize,
    },
    /// The activities must take place in one of the rooms.
    PreferredRooms {
        activities: Vec<usize>,
        rooms: Vec<usize>,
    },
    /// Activities taught by this teacher alone, without a preferred-room
    /// constraint, go to this room (FET: a co-taught activity is not covered).
    TeacherHomeRoom {
        teacher: usize,
        room: usize,
    },
    /// Activities of exactly this students set (not a larger or smaller set,
    /// not together with another set), without a preferred-room constraint,
    /// go to this room, as FET defines it.
    StudentsHomeRoom {
        students: usize,
        room: usize,
    },
    /// ITC-2007: the activities (lectures of a course) spread over at least `min` days.
    MinWorkingDays {
        activities: Vec<usize>,
        min: usize,
    },
    /// ITC-2007: each lecture of the students set should be adjacent to another one.
    CurriculumCompactness {
        students: usize,
    },
    /// ITC-2007: all activities in one room; cost is the number of extra rooms.
    RoomStability {
        activities: Vec<usize>,
    },
    /// At most `max` of the activities on any one (real) day; each one
    /// over costs one violation.
    MaxPerDay {
        activities: Vec<usize>,
        max: usize,
    },
}

impl ConstraintKind {
    /// A short English name used in reports and the relaxation ladder.
    pub fn name(&self) -> &'static str {
        use ConstraintKind::*;
        match self {
            BreakTimes(_) => "break times",
            TeacherNotAvailable { .. } => "teacher not available",
            StudentsNotAvailable { .. } => "students not available",
            RoomNotAvailable { .. } => "room not available",
            PreferredStartingTimes { .. } => "preferred starting times",
            PreferredTimeSlots { .. } => "preferred time slots",
            MinDaysBetween { .. } => "min days between activities",
            SameStartingTime { .. } => "same starting time",
            NotOverlapping { .. } => "not overlapping",
            TwoConsecutive { .. } => "two activities consecutive",
            EndsStudentsDay { .. } => "activity ends students day",
            MaxHoursDaily { .. } => "max hours daily",
            MinHoursDaily { .. } => "min hours daily",
            MaxGapsPerDay { .. } => "max gaps per day",
            MaxGapsPerWeek { .. } => "max gaps per week",
            MaxDaysPerWeek { .. } => "max days per week",
            MaxRealDaysPerWeek { .. } => "max real days per week",
            MaxHoursPerRealDay { .. } => "max hours per real day",
            MaxMorningAndAfternoonDays { .. } => "mornings-afternoons behavior",
            EarlyMaxBeginningsAtSecondHour { .. } => "early, max beginnings at second hour",
            PreferredRooms { .. } => "preferred rooms",
            TeacherHomeRoom { .. } => "teacher home room",
            StudentsHomeRoom { .. } => "students home room",
            MinWorkingDays { .. } => "min working days",
            CurriculumCompactness { .. } => "curriculum compactness",
            RoomStability { .. } => "room stability",
            MaxPerDay { .. } => "max activities per day",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub weight: Weight,
    pub kind: ConstraintKind,
}

/// How room capacity against the activity's number of students is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapacityRule {
    /// A room smaller than the group is not a candidate (FET).
    Hard,
    /// Each student over capacity costs this much (ITC-2007: 1).
    Soft(u32),
    /// Capacity is not checked.
    Ignore,
}

/// A complete timetabling instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub days: Vec<String>,
    pub periods: Vec<String>,
    pub subjects: Vec<String>,
    pub tags: Vec<String>,
    pub teachers: Vec<Teacher>,
    pub students: Vec<StudentsSet>,
    /// Names of the atomic student units (FET subgroups, ITC curricula).
    pub atoms: Vec<String>,
    pub buildings: Vec<Building>,
    pub rooms: Vec<Room>,
    pub activities: Vec<Activity>,
    pub constraints: Vec<Constraint>,
    pub capacity: CapacityRule,
    /// Refuse activities whose teacher is not qualified for their subject.
    pub check_qualifications: bool,
    /// Constraint types skipped on import, with how often they occurred.
    pub ignored: Vec<(String, usize)>,
    /// FET's mornings-afternoons mode: each "day" is a half day and "min days
    /// between activities" counts real days of this many half days (else 1).
    pub days_per_real_day: usize,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            name: String::new(),
            days: Vec::new(),
            periods: Vec::new(),
            subjects: Vec::new(),
            tags: Vec::new(),
            teachers: Vec::new(),
            students: Vec::new(),
            atoms: Vec::new(),
            buildings: Vec::new(),
            rooms: Vec::new(),
            activities: Vec::new(),
            constraints: Vec::new(),
            capacity: CapacityRule::Hard,
            check_qualifications: false,
            ignored: Vec::new(),
            days_per_real_day: 1,
        }
    }
}

/// Where each activity takes place: start (day, period) and room, by activity index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Solution {
    pub start: Vec<Option<Slot>>,
    pub room: Vec<Option<usize>>,
}

impl Solution {
    pub fn empty(n: usize) -> Self {
        Solution {
            start: vec![None; n],
            room: vec![None; n],
        }
    }
}

impl Model {
    pub fn n_slots(&self) -> usize {
        self.days.len() * self.periods.len()
    }

    /// Whole real days of the week ("min days between activities" counts
    /// these; days themselves outside mornings-afternoons mode).
    pub fn real_days(&self) -> usize {
        self.days.len() / self.days_per_real_day.max(1)
    }

    /// A human label for an activity, e.g. `activity 12 (Math; Smith; 5A)`.
    pub fn activity_label(&self, a: usize) -> String {
        let Some(act) = self.activities.get(a) else {
            return format!("activity #{a}");
        };
        let mut parts = Vec::new();
        if let Some(s) = act.subject.and_then(|s| self.subjects.get(s)) {
            parts.push(s.clone());
        }
        let t: Vec<&str> = act
            .teachers
            .iter()
            .filter_map(|&t| self.teachers.get(t).map(|t| t.name.as_str()))
            .collect();
        if !t.is_empty() {
            parts.push(t.join(", "));
        }
        let s: Vec<&str> = act
            .students
            .iter()
            .filter_map(|&s| self.students.get(s).map(|s| s.name.as_str()))
            .collect();
        if !s.is_empty() {
            parts.push(s.join(", "));
        }
        format!("activity {} ({})", act.id, parts.join("; "))
    }

    pub fn slot_label(&self, (d, p): Slot) -> String {
        format!(
            "{} {}",
            self.days.get(d).map(String::as_str).unwrap_or("?"),
            self.periods.get(p).map(String::as_str).unwrap_or("?")
        )
    }

    /// "Min days between activities" constraints that cannot hold for want
    /// of days, found before any search, as FET checks them: a teacher or
    /// subgroup with fewer available days (after breaks, hard not-available
    /// times and a hard "max days per week") than its activities in a hard
    /// one; or, for a soft one, fewer than half of them, since FET never puts
    /// more than two activities of such a constraint on one day and refuses
    /// the file ("data is wrong"). Likewise lessons the file's own hard
    /// starting times fix on one day: two under a hard one, three under any
    /// other (fet-cl stops at the third). In mornings-afternoons mode days
    /// are real days.
    pub fn min_days_warnings(&self) -> Vec<String> {
        let per_real = self.days_per_real_day.max(1);
        let n_real = self.days.len().div_ceil(per_real);
        let n_periods = self.periods.len();
        // Free (day, period) grids per teacher and per subgroup.
        let mut teacher_free = vec![vec![true; self.n_slots()]; self.teachers.len()];
        let mut atom_free = vec![vec![true; self.n_slots()]; self.atoms.len()];
        let mut teacher_max_days = vec![usize::MAX; self.teachers.len()];
        let index = |(d, p): Slot| d * n_periods + p;
        for c in self.constraints.iter().filter(|c| c.weight.is_hard()) {
            match &c.kind {
                ConstraintKind::BreakTimes(slots) => {
                    for grid in teacher_free.iter_mut().chain(atom_free.iter_mut()) {
                        for &s in slots {
                            grid[index(s)] = false;
                        }
                    }
                }
                ConstraintKind::TeacherNotAvailable { teacher, slots } => {
                    for &s in slots {
                        teacher_free[*teacher][index(s)] = false;
                    }
                }
                ConstraintKind::StudentsNotAvailable { students, slots } => {
                    for &atom in &self.students[*students].atoms {
                        for &s in slots {
                            atom_free[atom][index(s)] = false;
                        }
                    }
                }
                // Days, or in mornings-afternoons mode half days (which
                // bound real days too) or real days.
                ConstraintKind::MaxDaysPerWeek { who, max }
                | ConstraintKind::MaxRealDaysPerWeek { who, max } => match who {
                    Who::Teacher(t) => teacher_max_days[*t] = teacher_max_days[*t].min(*max),
                    Who::AllTeachers => teacher_max_days
                        .iter_mut()
                        .for_each(|m| *m = (*m).min(*max)),
                    _ => {}
                },
                _ => {}
            }
        }
        let days_free = |grid: &[bool]| {
            (0..n_real)
                .filter(|&r| {
                    (r * per_real..((r + 1) * per_real).min(self.days.len()))
                        .any(|d| grid[d * n_periods..(d + 1) * n_periods].iter().any(|&f| f))
                })
                .count()
        };
        let teacher_days: Vec<usize> = teacher_free
            .iter()
            .zip(&teacher_max_days)
            .map(|(g, &m)| days_free(g).min(m))
            .collect();
        let atom_days: Vec<usize> = atom_free.iter().map(|g| days_free(g)).collect();
        // The one real day an activity's hard starting times allow, if one.
        let mut allowed_days: Vec<Option<u64>> = vec![None; self.activities.len()];
        for c in self.constraints.iter().filter(|c| c.weight.is_hard()) {
            if let ConstraintKind::PreferredStartingTimes { activities, slots } = &c.kind {
                let days = slots
                    .iter()
                    .fold(0u64, |m, &(d, _)| m | 1 << ((d / per_real) as u64).min(63));
                for &a in activities {
                    let cur = allowed_days[a].get_or_insert(u64::MAX);
                    *cur &= days;
                }
            }
        }
        let fixed_day: Vec<Option<usize>> = allowed_days
            .iter()
            .map(|m| {
                m.filter(|m| m.count_ones() == 1)
                    .map(|m| m.trailing_zeros() as usize)
            })
            .collect();
        let day_word = |n: usize| match (per_real > 1, n == 1) {
            (true, true) => "real day",
            (true, false) => "real days",
            (false, true) => "day",
            (false, false) => "days",
        };
        let mut out = Vec::new();
        for c in &self.constraints {
            let ConstraintKind::MinDaysBetween {
                activities,
                min_days,
                ..
            } = &c.kind
            else {
                continue;
            };
            // A hard one keeps every pair apart; otherwise (a soft one, or
            // the "consecutive if same day" part alone, min_days 0) FET
            // still allows at most two of them on one day.
            let all_apart = c.weight.is_hard() && *min_days > 0;
            let mut per_teacher: std::collections::BTreeMap<usize, usize> = Default::default();
            let mut per_atom: std::collections::BTreeMap<usize, usize> = Default::default();
            for &a in activities {
                let act = &self.activities[a];
                for &t in &act.teachers {
                    *per_teacher.entry(t).or_default() += 1;
                }
                let mut atoms: Vec<usize> = act
                    .students
                    .iter()
                    .flat_map(|&s| self.students[s].atoms.iter().copied())
                    .collect();
                atoms.sort_unstable();
                atoms.dedup();
                for x in atoms {
                    *per_atom.entry(x).or_default() += 1;
                }
            }
            let ids: Vec<String> = activities
                .iter()
                .map(|&a| self.activities[a].id.to_string())
                .collect();
            let pct = match c.weight {
                Weight::Hard if *min_days == 0 => "consecutive if same day".to_string(),
                Weight::Hard => "100 %".to_string(),
                Weight::Soft(w) => format!("{w} %"),
            };
            let what = format!("min days between activities {} ({pct})", ids.join(", "));
            let resources = per_teacher
                .iter()
                .map(|(&t, &n)| {
                    (
                        format!("teacher {}", self.teachers[t].name),
                        teacher_days[t],
                        n,
                    )
                })
                .chain(
                    per_atom
                        .iter()
                        .map(|(&x, &n)| (format!("subgroup {}", self.atoms[x]), atom_days[x], n)),
                );
            // Lessons the file itself fixes on one day.
            let mut on_day: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
            for &a in activities {
                if let Some(d) = fixed_day[a] {
                    on_day
                        .entry(d)
                        .or_default()
                        .push(self.activities[a].id.to_string());
                }
            }
            for (d, fixed) in on_day {
                let day = if per_real > 1 {
                    format!("real day {}", d + 1)
                } else {
                    self.days[d].clone()
                };
                if all_apart && fixed.len() >= 2 {
                    out.push(format!(
                        "{what} cannot hold: activities {} are fixed on {day} by their starting times",
                        fixed.join(", ")
                    ));
                } else if !all_apart && fixed.len() >= 3 {
                    out.push(format!(
                        "{what}: activities {} are fixed on {day} by their starting times; FET allows at most 2 of them on one day and will not place the rest",
                        fixed.join(", ")
                    ));
                }
            }
            for (who, days, n) in resources {
                if all_apart && n > days {
                    out.push(format!(
                        "{what} cannot hold: {who} has {days} available {} for {n} of these activities", day_word(days)
                    ));
                } else if !all_apart && 2 * days < n {
                    out.push(format!(
                        "{what}: {who} has {days} available {} for {n} of these activities, so at least 3 share a day; FET allows at most 2 and refuses this file", day_word(days)
                    ));
                }
            }
        }
        out
    }

    /// Check internal consistency (indices in range, durations, qualifications).
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error::Invalid;
        if self.days.is_empty() || self.periods.is_empty() {
            return Err(Invalid("the week has no days or no periods".into()));
        }
        if self.periods.len() > 64 {
            return Err(Invalid(format!(
                "{} periods per day; at most 64 are supported",
                self.periods.len()
            )));
        }
        for (i, a) in self.activities.iter().enumerate() {
            if a.duration == 0 || a.duration > self.periods.len() {
                return Err(Invalid(format!(
                    "{} has duration {} but a day has {} periods",
                    self.activity_label(i),
                    a.duration,
                    self.periods.len()
                )));
            }
            if a.teachers.iter().any(|&t| t >= self.teachers.len())
                || a.students.iter().any(|&s| s >= self.students.len())
                || a.tags.iter().any(|&t| t >= self.tags.len())
                || a.subject.is_some_and(|s| s >= self.subjects.len())
            {
                return Err(Invalid(format!(
                    "activity {} refers to a missing entity",
                    a.id
                )));
            }
            if self.check_qualifications {
                if let Some(s) = a.subject {
                    for &t in &a.teachers {
                        let q = &self.teachers[t].qualified_subjects;
                        if !q.is_empty() && !q.contains(&s) {
                            return Err(Invalid(format!(
                                "teacher {} is not qualified to teach {} ({})",
                                self.teachers[t].name,
                                self.subjects[s],
                                self.activity_label(i)
                            )));
                        }
                    }
                }
            }
        }
        for s in &self.students {
            if s.atoms.iter().any(|&x| x >= self.atoms.len()) {
                return Err(Invalid(format!(
                    "students set {} refers to a missing subgroup",
                    s.name
                )));
            }
        }
        for r in &self.rooms {
            if r.building.is_some_and(|b| b >= self.buildings.len()) {
                return Err(Invalid(format!(
                    "room {} refers to a missing building",
                    r.name
                )));
            }
        }
        Ok(())
    }
}
