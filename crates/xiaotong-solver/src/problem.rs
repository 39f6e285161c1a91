//! The compiled search representation of a [`Model`]: time domains, room
//! candidates, resources and constraint instances in flat vectors.

use crate::model::*;
use std::collections::BTreeSet;

/// A constraint the timetable may be allowed to break when no feasible
/// timetable is found in time (the relaxation ladder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relaxation {
    /// Rooms of another campus become candidates.
    CampusMatch,
    /// Rooms lacking a required feature become candidates.
    RoomFeatures,
    /// Rooms smaller than the group become candidates.
    RoomCapacity,
    /// Hard constraints of this kind (see [`ConstraintKind::name`]) become soft (weight 100).
    Kind(String),
}

impl std::fmt::Display for Relaxation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Relaxation::CampusMatch => write!(f, "allow cross-campus rooms"),
            Relaxation::RoomFeatures => write!(f, "allow rooms without the required features"),
            Relaxation::RoomCapacity => write!(f, "allow rooms smaller than the group"),
            Relaxation::Kind(k) => write!(f, "treat \"{k}\" as soft"),
        }
    }
}

impl std::str::FromStr for Relaxation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "campus" | "cross-campus" => Relaxation::CampusMatch,
            "features" => Relaxation::RoomFeatures,
            "capacity" => Relaxation::RoomCapacity,
            "" => return Err("empty relaxation".into()),
            other => Relaxation::Kind(other.to_string()),
        })
    }
}

pub const NONE: u16 = u16::MAX;

#[derive(Debug, Clone)]
pub struct PAct {
    pub dur: usize,
    /// Resource indices: teachers first, then student atoms.
    pub res: Vec<u32>,
    /// Whether a start slot satisfies every hard time restriction (len = slots).
    pub allowed: Vec<bool>,
    /// Allowed start slots, for sampling.
    pub starts: Vec<u16>,
    /// Soft cost of each start slot (empty = all zero).
    pub start_cost: Vec<u32>,
    /// Candidate rooms (model room indices); empty = the activity takes no room.
    pub rooms: Vec<u16>,
    /// Soft cost of each candidate room, parallel to `rooms`.
    pub room_cost: Vec<u32>,
    pub needs_room: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GKind {
    MinDays {
        min: usize,
    },
    /// Two of the activities on the same (real) day must be adjacent.
    SameDayConsecutive,
    SameStart,
    NotOverlapping,
    Consecutive,
    MinWorkingDays {
        min: usize,
    },
    RoomStability,
    MaxPerDay {
        max: usize,
    },
}

impl GKind {
    /// Whether the violation is a sum over pairs of the activities, so it
    /// can be updated per activity moved instead of recounted.
    pub fn pairwise(self) -> bool {
        matches!(
            self,
            GKind::MinDays { .. }
                | GKind::SameDayConsecutive
                | GKind::NotOverlapping
                | GKind::Consecutive
        )
    }
}

#[derive(Debug, Clone)]
pub struct GroupCon {
    pub hard: bool,
    pub w: u32,
    pub kind: GKind,
    pub acts: Vec<usize>,
    pub source: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RKind {
    MaxHours(usize),
    MinHours {
        min: usize,
        allow_empty: bool,
    },
    MaxGapsDay(usize),
    MaxGapsWeek(usize),
    MaxDays(usize),
    EarlyMax(usize),
    Compact,
    EndsDay(usize),
    /// Evaluated on real days (two half days): days with activities.
    RealDays(usize),
    /// Evaluated on real days: periods over the limit.
    RealDayHours(usize),
    /// Evaluated on real days: days with both halves busy.
    FullDays(usize),
}

impl RKind {
    /// Whether the constraint is evaluated on real days (pairs of half days).
    pub fn real_day(self) -> bool {
        matches!(
            self,
            RKind::RealDays(_) | RKind::RealDayHours(_) | RKind::FullDays(_)
        )
    }
}

#[derive(Debug, Clone)]
pub struct ResCon {
    pub hard: bool,
    pub w: u32,
    pub kind: RKind,
    pub res: u32,
    pub source: usize,
}

/// Something that makes the instance infeasible before any search.
#[derive(Debug, Clone)]
pub struct Blocker {
    pub activities: Vec<usize>,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub days: usize,
    pub periods: usize,
    pub slots: usize,
    pub n_teachers: usize,
    pub n_res: usize,
    pub n_rooms: usize,
    pub acts: Vec<PAct>,
    /// Per resource and day: periods that are breaks or hard "not available"
    /// (not counted as gaps).
    pub excused: Vec<u64>,
    /// Per room and slot: 1 when the room is not available (hard).
    pub room_block: Vec<u16>,
    /// Per room and slot: soft cost of using it.
    pub room_soft: Vec<u32>,
    pub groups: Vec<GroupCon>,
    pub act_groups: Vec<Vec<u32>>,
    pub rcons: Vec<ResCon>,
    pub res_rcons: Vec<Vec<u32>>,
    /// Activities tied by hard same-starting-time constraints move together.
    pub units: Vec<Vec<usize>>,
    pub act_unit: Vec<usize>,
    pub unit_starts: Vec<Vec<u16>>,
    pub blockers: Vec<Blocker>,
    pub relaxed: Vec<Relaxation>,
    /// Days per real day for "min days between activities" (2 in mornings-afternoons mode).
    pub real_day: usize,
    /// Per slot: its day and its real day (tables, since the pairwise
    /// constraints ask on every move and a division costs more).
    pub slot_day: Vec<u16>,
    pub slot_real_day: Vec<u16>,
    /// Per slot (and one past the last): the first slot from there on that
    /// is not a break of the same day ("two activities consecutive" may
    /// have breaks between them, as FET defines it).
    pub past_breaks: Vec<u16>,
}

fn expand_who(m: &Model, who: &Who) -> Vec<u32> {
    let nt = m.teachers.len();
    match who {
        Who::AllTeachers => (0..nt as u32).collect(),
        Who::Teacher(t) => vec![*t as u32],
        Who::AllStudents => (0..m.atoms.len()).map(|a| (nt + a) as u32).collect(),
        Who::Students(s) => m
            .students
            .get(*s)
            .map(|s| s.atoms.iter().map(|&a| (nt + a) as u32).collect())
            .unwrap_or_default(),
    }
}

impl Problem {
    pub fn slot(&self, d: usize, p: usize) -> usize {
        d * self.periods + p
    }

    /// Compile a model, with the given relaxations applied.
    pub fn compile(m: &Model, relax: &[Relaxation]) -> crate::Result<Problem> {
        m.validate()?;
        let days = m.days.len();
        let periods = m.periods.len();
        let slots = days * periods;
        if slots >= NONE as usize {
            return Err(crate::Error::Invalid("too many time slots".into()));
        }
        let nt = m.teachers.len();
        let n_res = nt + m.atoms.len();
        let n_acts = m.activities.len();
        let bad =
            |what: &str| crate::Error::Invalid(format!("a constraint refers to a missing {what}"));
        let relaxed_kind = |k: &ConstraintKind| {
            relax
                .iter()
                .any(|r| matches!(r, Relaxation::Kind(n) if n == k.name()))
        };
        let weight = |c: &Constraint| -> (bool, u32) {
            match c.weight {
                Weight::Hard if relaxed_kind(&c.kind) => (false, 100),
                Weight::Hard => (true, 1),
                Weight::Soft(w) => (false, w),
            }
        };

        // Resources of each activity.
        let mut act_res: Vec<Vec<u32>> = Vec::with_capacity(n_acts);
        for a in &m.activities {
            let mut r: BTreeSet<u32> = a.teachers.iter().map(|&t| t as u32).collect();
            for &s in &a.students {
                for &x in &m.students[s].atoms {
                    r.insert((nt + x) as u32);
                }
            }
            act_res.push(r.into_iter().collect());
        }
        let mut res_acts: Vec<Vec<usize>> = vec![Vec::new(); n_res];
        for (a, rs) in act_res.iter().enumerate() {
            for &r in rs {
                res_acts[r as usize].push(a);
            }
        }

        // Hard forbidden slots per resource, soft costs per resource slot.
        let mut res_forbid = vec![false; n_res * slots];
        let mut res_soft = vec![0u32; n_res * slots];
        let mut all_forbid = vec![false; slots];
        let mut all_soft = vec![0u32; slots];
        let mut room_block = vec![0u16; m.rooms.len() * slots];
        let mut room_soft = vec![0u32; m.rooms.len() * slots];
        let mut allowed: Vec<Vec<bool>> = m
            .activities
            .iter()
            .map(|a| {
                (0..slots)
                    .map(|s| s % periods + a.duration <= periods)
                    .collect()
            })
            .collect();
        let mut start_cost: Vec<Vec<u32>> = vec![Vec::new(); n_acts];
        let add_cost = |v: &mut Vec<u32>, s: usize, w: u32| {
            if v.is_empty() {
                v.resize(slots, 0);
            }
            v[s] = v[s].saturating_add(w);
        };
        let slot_ok = |&(d, p): &Slot| d < days && p < periods;
        let mut groups: Vec<GroupCon> = Vec::new();
        let mut rcons: Vec<ResCon> = Vec::new();
        let mut links: Vec<Vec<usize>> = Vec::new();
        // Room rules collected per activity.
        let mut hard_rooms: Vec<Option<BTreeSet<usize>>> = vec![None; n_acts];
        let mut soft_rooms: Vec<Vec<(BTreeSet<usize>, u32)>> = vec![Vec::new(); n_acts];
        let mut home: Vec<Vec<(usize, bool, u32)>> = vec![Vec::new(); n_acts];

        for (ci, c) in m.constraints.iter().enumerate() {
            let (hard, w) = weight(c);
            let check_acts = |v: &[usize]| -> crate::Result<()> {
                if v.iter().any(|&a| a >= n_acts) {
                    Err(bad("activity"))
                } else {
                    Ok(())
                }
            };
            use ConstraintKind as K;
            match &c.kind {
                K::BreakTimes(sl) => {
                    for s in sl.iter().filter(|s| slot_ok(s)) {
                        let i = s.0 * periods + s.1;
                        if hard {
                            all_forbid[i] = true;
                        } else {
                            all_soft[i] += w;
                        }
                    }
                }
                K::TeacherNotAvailable { teacher, slots: sl }
                | K::StudentsNotAvailable {
                    students: teacher,
                    slots: sl,
                } => {
                    let rs: Vec<u32> = if matches!(c.kind, K::TeacherNotAvailable { .. }) {
                        if *teacher >= nt {
                            return Err(bad("teacher"));
                        }
                        vec![*teacher as u32]
                    } else {
                        expand_who(m, &Who::Students(*teacher))
                    };
                    for r in rs {
                        for s in sl.iter().filter(|s| slot_ok(s)) {
                            let i = r as usize * slots + s.0 * periods + s.1;
                            if hard {
                                res_forbid[i] = true;
                            } else {
                                res_soft[i] += w;
                            }
                        }
                    }
                }
                K::RoomNotAvailable { room, slots: sl } => {
                    if *room >= m.rooms.len() {
                        return Err(bad("room"));
                    }
                    for s in sl.iter().filter(|s| slot_ok(s)) {
                        let i = room * slots + s.0 * periods + s.1;
                        if hard {
                            room_block[i] = 1;
                        } else {
                            room_soft[i] += w;
                        }
                    }
                }
                K::PreferredStartingTimes {
                    activities,
                    slots: sl,
                } => {
                    check_acts(activities)?;
                    let mut ok = vec![false; slots];
                    for s in sl.iter().filter(|s| slot_ok(s)) {
                        ok[s.0 * periods + s.1] = true;
                    }
                    for &a in activities {
                        for s in 0..slots {
                            if !ok[s] {
                                if hard {
                                    allowed[a][s] = false;
                                } else {
                                    add_cost(&mut start_cost[a], s, w);
                                }
                            }
                        }
                    }
                }
                K::PreferredTimeSlots {
                    activities,
                    slots: sl,
                } => {
                    check_acts(activities)?;
                    let mut ok = vec![false; slots];
                    for s in sl.iter().filter(|s| slot_ok(s)) {
                        ok[s.0 * periods + s.1] = true;
                    }
                    for &a in activities {
                        let dur = m.activities[a].duration;
                        for s in 0..slots {
                            if s % periods + dur > periods {
                                continue;
                            }
                            if !(s..s + dur).all(|x| ok[x]) {
                                if hard {
                                    allowed[a][s] = false;
                                } else {
                                    add_cost(&mut start_cost[a], s, w);
                                }
                            }
                        }
                    }
                }
                K::MinDaysBetween {
                    activities,
                    min_days,
                    consecutive_if_same_day,
                } => {
                    check_acts(activities)?;
                    if *min_days > 0 {
                        groups.push(GroupCon {
                            hard,
                            w,
                            kind: GKind::MinDays { min: *min_days },
                            acts: activities.clone(),
                            source: ci,
                        });
                    }
                    if *consecutive_if_same_day {
                        // Hard whatever the weight (as FET does), unless relaxed.
                        let (hard, w) = if relaxed_kind(&c.kind) {
                            (false, 100)
                        } else {
                            (true, 1)
                        };
                        groups.push(GroupCon {
                            hard,
                            w,
                            kind: GKind::SameDayConsecutive,
                            acts: activities.clone(),
                            source: ci,
                        });
                    }
                }
                K::SameStartingTime { activities } => {
                    check_acts(activities)?;
                    if hard {
                        links.push(activities.clone());
                    } else {
                        groups.push(GroupCon {
                            hard,
                            w,
                            kind: GKind::SameStart,
                            acts: activities.clone(),
                            source: ci,
                        });
                    }
                }
                K::NotOverlapping { activities } => {
                    check_acts(activities)?;
                    groups.push(GroupCon {
                        hard,
                        w,
                        kind: GKind::NotOverlapping,
                        acts: activities.clone(),
                        source: ci,
                    });
                }
                K::TwoConsecutive { first, second } => {
                    check_acts(&[*first, *second])?;
                    if first == second {
                        return Err(crate::Error::Invalid(format!(
                            "\"two activities consecutive\" names activity {} as both \
                             first and second: an activity cannot follow itself",
                            m.activities[*first].id
                        )));
                    }
                    groups.push(GroupCon {
                        hard,
                        w,
                        kind: GKind::Consecutive,
                        acts: vec![*first, *second],
                        source: ci,
                    });
                }
                K::MinWorkingDays { activities, min } => {
                    check_acts(activities)?;
                    groups.push(GroupCon {
                        hard,
                        w,
                        kind: GKind::MinWorkingDays { min: *min },
                        acts: activities.clone(),
                        source: ci,
                    });
                }
                K::MaxPerDay { activities, max } => {
                    check_acts(activities)?;
                    groups.push(GroupCon {
                        hard,
                        w,
                        kind: GKind::MaxPerDay { max: *max },
                        acts: activities.clone(),
                        source: ci,
                    });
                }
                K::RoomStability { activities } => {
                    check_acts(activities)?;
                    groups.push(GroupCon {
                        hard,
                        w,
                        kind: GKind::RoomStability,
                        acts: activities.clone(),
                        source: ci,
                    });
                }
                K::EndsStudentsDay { activity } => {
                    check_acts(&[*activity])?;
                    for &r in act_res[*activity].iter().filter(|&&r| r as usize >= nt) {
                        rcons.push(ResCon {
                            hard,
                            w,
                            kind: RKind::EndsDay(*activity),
                            res: r,
                            source: ci,
                        });
                    }
                }
                K::CurriculumCompactness { students } => {
                    if *students >= m.students.len() {
                        return Err(bad("students set"));
                    }
                    for r in expand_who(m, &Who::Students(*students)) {
                        rcons.push(ResCon {
                            hard,
                            w,
                            kind: RKind::Compact,
                            res: r,
                            source: ci,
                        });
                    }
                }
                K::MaxHoursDaily { who, max }
                | K::MinHoursDaily { who, min: max, .. }
                | K::MaxGapsPerDay { who, max }
                | K::MaxGapsPerWeek { who, max }
                | K::MaxDaysPerWeek { who, max }
                | K::MaxRealDaysPerWeek { who, max }
                | K::MaxHoursPerRealDay { who, max }
                | K::MaxMorningAndAfternoonDays { who, max }
                | K::EarlyMaxBeginningsAtSecondHour { who, max } => {
                    match who {
                        Who::Teacher(t) if *t >= nt => return Err(bad("teacher")),
                        Who::Students(s) if *s >= m.students.len() => {
                            return Err(bad("students set"))
                        }
                        _ => {}
                    }
                    let kind = match &c.kind {
                        K::MaxHoursDaily { .. } => RKind::MaxHours(*max),
                        K::MinHoursDaily {
                            allow_empty_days, ..
                        } => RKind::MinHours {
                            min: *max,
                            allow_empty: *allow_empty_days,
                        },
                        K::MaxGapsPerDay { .. } => RKind::MaxGapsDay(*max),
                        K::MaxGapsPerWeek { .. } => RKind::MaxGapsWeek(*max),
                        K::MaxDaysPerWeek { .. } => RKind::MaxDays(*max),
                        K::MaxRealDaysPerWeek { .. } => RKind::RealDays(*max),
                        K::MaxHoursPerRealDay { .. } => RKind::RealDayHours(*max),
                        K::MaxMorningAndAfternoonDays { .. } => RKind::FullDays(*max),
                        _ => RKind::EarlyMax(*max),
                    };
                    for r in expand_who(m, who) {
                        rcons.push(ResCon {
                            hard,
                            w,
                            kind,
                            res: r,
                            source: ci,
                        });
                    }
                }
                K::PreferredRooms { activities, rooms } => {
                    check_acts(activities)?;
                    if rooms.iter().any(|&r| r >= m.rooms.len()) {
                        return Err(bad("room"));
                    }
                    let set: BTreeSet<usize> = rooms.iter().copied().collect();
                    for &a in activities {
                        if hard {
                            hard_rooms[a] = Some(match hard_rooms[a].take() {
                                None => set.clone(),
                                Some(prev) => prev.intersection(&set).copied().collect(),
                            });
                        } else {
                            soft_rooms[a].push((set.clone(), w));
                        }
                    }
                }
                K::TeacherHomeRoom { teacher, room } => {
                    if *teacher >= nt || *room >= m.rooms.len() {
                        return Err(bad("teacher or room"));
                    }
                    for (a, act) in m.activities.iter().enumerate() {
                        if act.teachers == [*teacher] {
                            home[a].push((*room, hard, w));
                        }
                    }
                }
                K::StudentsHomeRoom { students, room } => {
                    if *students >= m.students.len() || *room >= m.rooms.len() {
                        return Err(bad("students set or room"));
                    }
                    for (a, act) in m.activities.iter().enumerate() {
                        if act.students == [*students] {
                            home[a].push((*room, hard, w));
                        }
                    }
                }
            }
        }

        let mut blockers = Vec::new();
        // Excused periods per resource-day: breaks and hard unavailability.
        let mut excused = vec![0u64; n_res * days];
        for r in 0..n_res {
            for d in 0..days {
                let mut e = 0u64;
                for p in 0..periods {
                    let s = d * periods + p;
                    if all_forbid[s] || res_forbid[r * slots + s] {
                        e |= 1 << p;
                    }
                }
                excused[r * days + d] = e;
            }
        }
        // Resource load check.
        for r in 0..n_res {
            let free = (0..slots)
                .filter(|&s| !all_forbid[s] && !res_forbid[r * slots + s])
                .count();
            let need: usize = res_acts[r].iter().map(|&a| m.activities[a].duration).sum();
            if need > free {
                let who = if r < nt {
                    format!("teacher {}", m.teachers[r].name)
                } else {
                    format!("students {}", m.atoms[r - nt])
                };
                let verb = if r < nt { "teaches" } else { "have" };
                blockers.push(Blocker {
                    activities: res_acts[r].clone(),
                    message: format!("{who} is available {free} periods a week and {verb} {need}"),
                });
            }
        }

        let covered = covered_students(nt, n_acts, &res_acts, &rcons);

        // Final time domains and soft start costs.
        let mut acts = Vec::with_capacity(n_acts);
        for (a, act) in m.activities.iter().enumerate() {
            let dur = act.duration;
            let mut al = std::mem::take(&mut allowed[a]);
            let mut reasons: BTreeSet<String> = BTreeSet::new();
            let before = al.iter().filter(|&&x| x).count();
            for (s, ok) in al.iter_mut().enumerate() {
                if !*ok {
                    continue;
                }
                for x in s..s + dur {
                    if all_forbid[x] {
                        *ok = false;
                        reasons.insert("break times".to_string());
                    }
                    for &r in &act_res[a] {
                        if res_forbid[r as usize * slots + x] {
                            *ok = false;
                            reasons.insert(if (r as usize) < nt {
                                format!("teacher {} not available", m.teachers[r as usize].name)
                            } else {
                                format!("students {} not available", m.atoms[r as usize - nt])
                            });
                        }
                    }
                }
            }
            let mut sc = std::mem::take(&mut start_cost[a]);
            for s in 0..slots {
                if s % periods + dur > periods {
                    continue;
                }
                let mut c = 0u32;
                for x in s..s + dur {
                    c += all_soft[x];
                    for &r in &act_res[a] {
                        c += res_soft[r as usize * slots + x];
                    }
                }
                if c > 0 {
                    add_cost(&mut sc, s, c);
                }
            }
            let starts: Vec<u16> = (0..slots).filter(|&s| al[s]).map(|s| s as u16).collect();
            if starts.is_empty() {
                let why = if before == 0 {
                    "its preferred times leave no slot".to_string()
                } else {
                    let r: Vec<String> = reasons.into_iter().collect();
                    format!("blocked by {}", r.join(", "))
                };
                blockers.push(Blocker {
                    activities: vec![a],
                    message: format!(
                        "{} has no possible starting time: {why}",
                        m.activity_label(a)
                    ),
                });
            }
            // Rooms.
            let mut base: Option<BTreeSet<usize>> = hard_rooms[a].clone();
            let mut room_extra: Vec<(BTreeSet<usize>, u32)> = soft_rooms[a].clone();
            if base.is_none() {
                for &(room, h, w) in &home[a] {
                    let set: BTreeSet<usize> = [room].into_iter().collect();
                    if h {
                        base = Some(match base.take() {
                            None => set,
                            Some(prev) => prev.intersection(&set).copied().collect(),
                        });
                    } else {
                        room_extra.push((set, w));
                    }
                }
            }
            let wants_room = act.needs_room
                || base.is_some()
                || !room_extra.is_empty()
                || !act.required_features.is_empty()
                || act.campus.is_some();
            let mut rooms = Vec::new();
            let mut room_cost = Vec::new();
            if wants_room {
                let cand: Vec<usize> = match &base {
                    Some(b) => b.iter().copied().collect(),
                    None => (0..m.rooms.len()).collect(),
                };
                let mut why: BTreeSet<String> = BTreeSet::new();
                if cand.is_empty() {
                    why.insert("its preferred room constraints have no room in common".into());
                }
                for r in cand {
                    let room = &m.rooms[r];
                    let mut cost = 0u32;
                    let over = act.n_students.saturating_sub(room.capacity);
                    if over > 0 {
                        match m.capacity {
                            CapacityRule::Hard if !relax.contains(&Relaxation::RoomCapacity) => {
                                why.insert(format!(
                                    "{} holds {} but the group has {}",
                                    room.name, room.capacity, act.n_students
                                ));
                                continue;
                            }
                            CapacityRule::Soft(w) => cost += w.saturating_mul(over),
                            CapacityRule::Hard => cost += 100u32.saturating_mul(over),
                            CapacityRule::Ignore => {}
                        }
                    }
                    if !relax.contains(&Relaxation::RoomFeatures) {
                        if let Some(f) = act
                            .required_features
                            .iter()
                            .find(|f| !room.features.contains(f))
                        {
                            why.insert(format!("{} lacks {f}", room.name));
                            continue;
                        }
                    }
                    if let Some(campus) = &act.campus {
                        let rc = room
                            .building
                            .and_then(|b| m.buildings.get(b))
                            .and_then(|b| b.campus.as_ref());
                        if rc != Some(campus) {
                            if relax.contains(&Relaxation::CampusMatch) {
                                cost += 100;
                            } else {
                                why.insert(format!("{} is not on campus {campus}", room.name));
                                continue;
                            }
                        }
                    }
                    for (set, w) in &room_extra {
                        if !set.contains(&r) {
                            cost += w;
                        }
                    }
                    rooms.push(r as u16);
                    room_cost.push(cost);
                }
                if rooms.is_empty() {
                    let mut w: Vec<String> = why.into_iter().collect();
                    if w.len() > 4 {
                        let n = w.len();
                        w.truncate(4);
                        w.push(format!("… {} rooms in all", n));
                    }
                    blockers.push(Blocker {
                        activities: vec![a],
                        message: format!(
                            "{} has no suitable room: {}",
                            m.activity_label(a),
                            w.join("; ")
                        ),
                    });
                }
            }
            acts.push(PAct {
                dur,
                res: act_res[a]
                    .iter()
                    .copied()
                    .filter(|&r| !covered[r as usize])
                    .collect(),
                allowed: al,
                starts,
                start_cost: sc,
                rooms,
                room_cost,
                needs_room: wants_room,
            });
        }

        // Units: union-find over hard same-starting-time links.
        let mut parent: Vec<usize> = (0..n_acts).collect();
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while p[r] != r {
                r = p[r];
            }
            let mut y = x;
            while p[y] != r {
                let n = p[y];
                p[y] = r;
                y = n;
            }
            r
        }
        for l in &links {
            for w in l.windows(2) {
                let (a, b) = (find(&mut parent, w[0]), find(&mut parent, w[1]));
                if a != b {
                    parent[a] = b;
                }
            }
        }
        let mut unit_of_root = vec![usize::MAX; n_acts];
        let mut units: Vec<Vec<usize>> = Vec::new();
        let mut act_unit = vec![0; n_acts];
        for a in 0..n_acts {
            let r = find(&mut parent, a);
            if unit_of_root[r] == usize::MAX {
                unit_of_root[r] = units.len();
                units.push(Vec::new());
            }
            act_unit[a] = unit_of_root[r];
            units[unit_of_root[r]].push(a);
        }
        let mut unit_starts = Vec::with_capacity(units.len());
        for u in &units {
            let mut st: Vec<u16> = (0..slots as u16)
                .filter(|&s| u.iter().all(|&a| acts[a].allowed[s as usize]))
                .collect();
            if st.is_empty() {
                if u.len() > 1 && u.iter().all(|&a| !acts[a].starts.is_empty()) {
                    let names: Vec<String> = u.iter().map(|&a| m.activity_label(a)).collect();
                    blockers.push(Blocker {
                        activities: u.clone(),
                        message: format!(
                            "{} must start together but have no common possible time",
                            names.join(", ")
                        ),
                    });
                }
                // Fall back to the slots where every member fits in the day.
                st = (0..slots as u16)
                    .filter(|&s| {
                        u.iter()
                            .all(|&a| (s as usize) % periods + acts[a].dur <= periods)
                    })
                    .collect();
            }
            unit_starts.push(st);
        }

        let mut act_groups = vec![Vec::new(); n_acts];
        for (g, gc) in groups.iter().enumerate() {
            let mut seen = BTreeSet::new();
            for &a in &gc.acts {
                if seen.insert(a) {
                    act_groups[a].push(g as u32);
                }
            }
        }
        let mut res_rcons = vec![Vec::new(); n_res];
        for (i, rc) in rcons.iter().enumerate() {
            res_rcons[rc.res as usize].push(i as u32);
        }
        Ok(Problem {
            days,
            periods,
            slots,
            n_teachers: nt,
            n_res,
            n_rooms: m.rooms.len(),
            acts,
            excused,
            room_block,
            room_soft,
            groups,
            act_groups,
            rcons,
            res_rcons,
            units,
            act_unit,
            unit_starts,
            blockers,
            relaxed: relax.to_vec(),
            real_day: m.days_per_real_day.max(1),
            slot_day: (0..days * periods).map(|s| (s / periods) as u16).collect(),
            slot_real_day: (0..days * periods)
                .map(|s| (s / periods / m.days_per_real_day.max(1)) as u16)
                .collect(),
            past_breaks: (0..=slots)
                .map(|x| {
                    let mut y = x;
                    while y < slots && all_forbid[y] && y / periods == x / periods {
                        y += 1;
                    }
                    y as u16
                })
                .collect(),
        })
    }
}

/// Students resources (subgroups) the search need not track: those without
/// a constraint of their own whose lessons are all lessons of another
/// subgroup too, so that a clash of theirs is always a clash of that one.
/// Schools that divide years into categories have thousands of subgroups
/// (StPaulsColY13T1a lists 6,912, of which 1,746 differ), and a year's
/// lesson would otherwise touch hundreds of them at each move. Their
/// unavailable times are already in the lessons' allowed starts.
fn covered_students(
    nt: usize,
    n_acts: usize,
    res_acts: &[Vec<usize>],
    rcons: &[ResCon],
) -> Vec<bool> {
    let n_res = res_acts.len();
    let mut constrained = vec![false; n_res];
    for rc in rcons {
        constrained[rc.res as usize] = true;
    }
    let mut covered = vec![false; n_res];
    // The subgroups of each lesson, to find the candidates that could
    // cover a subgroup: those of its lesson with the fewest subgroups.
    let mut act_atoms: Vec<Vec<usize>> = vec![Vec::new(); n_acts];
    for r in nt..n_res {
        for &a in &res_acts[r] {
            act_atoms[a].push(r);
        }
    }
    let includes = |big: &[usize], small: &[usize]| {
        let mut i = 0;
        small.iter().all(|x| {
            while i < big.len() && big[i] < *x {
                i += 1;
            }
            i < big.len() && big[i] == *x
        })
    };
    for r in nt..n_res {
        let acts = &res_acts[r];
        if constrained[r] || acts.is_empty() {
            continue;
        }
        let rarest = acts
            .iter()
            .min_by_key(|&&a| act_atoms[a].len())
            .map(|&a| &act_atoms[a])
            .unwrap();
        // Covered by a larger set, or by an equal one listed first (so
        // that one of equal subgroups stays).
        covered[r] = rarest.iter().any(|&o| {
            o != r
                && (res_acts[o].len() > acts.len() || (res_acts[o].len() == acts.len() && o < r))
                && includes(&res_acts[o], acts)
        });
    }
    covered
}
