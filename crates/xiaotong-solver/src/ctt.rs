//! ITC-2007 track 3: simulated annealing on the soft cost.
//!
//! The generic solver builds the first timetable without hard violations;
//! from there the search stays among feasible timetables and moves lectures
//! with Move/Swap, Kempe chains on the period conflict graph (curricula and
//! teachers), room moves and whole-course room moves. The soft cost is kept
//! incrementally (per course: rooms and days used; per curriculum and day:
//! a bit mask of busy periods), so a move costs a few array updates.
//! Move/Swap and Kempe-chain moves are evaluated before they are made
//! (most are rejected at low temperature); Kempe chains are found through
//! the lecture of each curriculum and teacher at a period.
//!
//! The start and reheat temperatures grow with the number of curricula per
//! lecture (one move changes that many compactness terms). Two options are
//! off by default because they did not help in measurements: a relaxed
//! search that breaks curriculum, teacher and availability constraints at
//! an adaptive penalty (`Schedule::hard_weight`), and threads exchanging
//! their best timetable at each cycle (`Schedule::share`).

use crate::itc::Instance;
use crate::model::Solution;
use crate::solver::{self, Progress, SolveOptions, SolveResult};
use crate::state::Cost;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const NO: u32 = u32::MAX;
const NOP: u16 = u16::MAX;

/// An instance in flat arrays. Lectures are numbered in course order, as
/// the activities of [`crate::itc::to_model`].
pub struct Compiled {
    pub nc: usize,
    pub nr: usize,
    pub nd: usize,
    pub ppd: usize,
    pub np: usize,
    nq: usize,
    teacher: Vec<u32>,
    curricula: Vec<Vec<u32>>,
    mwd: Vec<u16>,
    /// Students over capacity, course × room.
    cap_pen: Vec<u32>,
    /// Course × period.
    unavailable: Vec<bool>,
    /// Course × course: same teacher or a shared curriculum (or the same course).
    conflict: Vec<bool>,
    pub lec_course: Vec<u32>,
    course_lecs: Vec<Vec<u32>>,
    n_teachers: usize,
}

impl Compiled {
    pub fn new(inst: &Instance) -> Self {
        let nc = inst.courses.len();
        let nr = inst.rooms.len();
        let nd = inst.days;
        let ppd = inst.periods_per_day;
        let np = nd * ppd;
        let mut teachers: Vec<&str> = Vec::new();
        let teacher: Vec<u32> = inst
            .courses
            .iter()
            .map(|c| match teachers.iter().position(|&t| t == c.teacher) {
                Some(i) => i as u32,
                None => {
                    teachers.push(&c.teacher);
                    (teachers.len() - 1) as u32
                }
            })
            .collect();
        let mut curricula = vec![Vec::new(); nc];
        for (q, cu) in inst.curricula.iter().enumerate() {
            for &c in &cu.courses {
                if !curricula[c].contains(&(q as u32)) {
                    curricula[c].push(q as u32);
                }
            }
        }
        let mut cap_pen = vec![0; nc * nr];
        for (c, course) in inst.courses.iter().enumerate() {
            for (r, room) in inst.rooms.iter().enumerate() {
                cap_pen[c * nr + r] = course.students.saturating_sub(room.1);
            }
        }
        let mut unavailable = vec![false; nc * np];
        for &(c, d, p) in &inst.unavailability {
            unavailable[c * np + d * ppd + p] = true;
        }
        let mut conflict = vec![false; nc * nc];
        for a in 0..nc {
            for b in 0..nc {
                conflict[a * nc + b] = a == b
                    || teacher[a] == teacher[b]
                    || curricula[a].iter().any(|q| curricula[b].contains(q));
            }
        }
        let mut lec_course = Vec::new();
        let mut course_lecs = vec![Vec::new(); nc];
        for (c, course) in inst.courses.iter().enumerate() {
            for _ in 0..course.lectures {
                course_lecs[c].push(lec_course.len() as u32);
                lec_course.push(c as u32);
            }
        }
        Compiled {
            nc,
            nr,
            nd,
            ppd,
            np,
            nq: inst.curricula.len(),
            teacher,
            curricula,
            mwd: inst
                .courses
                .iter()
                .map(|c| c.min_working_days.min(u16::MAX as usize) as u16)
                .collect(),
            cap_pen,
            unavailable,
            conflict,
            lec_course,
            course_lecs,
            n_teachers: teachers.len(),
        }
    }

    pub fn n_lectures(&self) -> usize {
        self.lec_course.len()
    }

    /// Curricula per lecture, on average: a lecture moved in an instance
    /// where courses belong to many curricula changes many compactness
    /// terms at once, so its cost differences are larger.
    pub fn curricula_per_lecture(&self) -> f64 {
        let n = self.n_lectures();
        if n == 0 {
            return 0.0;
        }
        let sum: usize = self
            .lec_course
            .iter()
            .map(|&c| self.curricula[c as usize].len())
            .sum();
        sum as f64 / n as f64
    }
}

/// Lectures with their new period and room, moved together.
pub type Plan = Vec<(u32, u16, u16)>;

/// A Kempe chain being built: its lectures with their side (false: at the
/// first lecture's period), and marks stamped with the current chain's
/// number, so membership and rooms given away are tested in O(1).
#[derive(Default)]
pub struct Chain {
    members: Vec<(u32, bool)>,
    /// Lecture: stamped when in the chain.
    mark: Vec<u32>,
    /// Side × room: stamped when given to a lecture of the chain.
    taken: Vec<u32>,
    /// Room: lectures of one course leaving (-1) or given it (+1).
    adjust: Vec<(u16, i32)>,
    epoch: u32,
}

impl Chain {
    fn start(&mut self, lectures: usize, slots: usize) {
        self.members.clear();
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 || self.mark.len() != lectures || self.taken.len() != slots {
            self.mark = vec![0; lectures];
            self.taken = vec![0; slots];
            self.epoch = 1;
        }
    }

    #[inline]
    fn add(&mut self, x: u32, side: bool) {
        self.mark[x as usize] = self.epoch;
        self.members.push((x, side));
    }
}

/// How many of a course's rooms (or days) are used after one of its
/// lectures moves from `from` to `to` (distinct), given the lectures per
/// room (or day) and the `used` count before.
#[inline]
fn used_after_move(used: i64, counts: &[u16], from: usize, to: usize) -> i64 {
    used - (counts[from] == 1) as i64 + (counts[to] == 0) as i64
}

/// Isolated busy periods of a day (no busy neighbour on either side).
#[inline]
fn isolated(mask: u64) -> i64 {
    (mask & !(mask << 1) & !(mask >> 1)).count_ones() as i64
}

/// A feasible timetable with its soft cost, kept incrementally.
#[derive(Clone)]
pub struct CttState<'a> {
    k: &'a Compiled,
    pub period: Vec<u16>,
    pub room: Vec<u16>,
    /// Lecture in period × room, or NO.
    at: Vec<u32>,
    /// Teacher × period: lectures.
    teacher_busy: Vec<u16>,
    /// Curriculum × day: busy periods.
    curr_mask: Vec<u64>,
    /// Curriculum × period: lectures (more than one only when relaxed).
    curr_cnt: Vec<u8>,
    /// Period: lectures (rooms taken).
    period_load: Vec<u16>,
    /// Curriculum × period and teacher × period: the lecture there, or NO
    /// (exact while no constraint is broken; Kempe chains read them).
    curr_at: Vec<u32>,
    teacher_at: Vec<u32>,
    course_day: Vec<u16>,
    course_ndays: Vec<u16>,
    course_room: Vec<u16>,
    course_nrooms: Vec<u16>,
    pub cost: i64,
    /// Hard violations (clashes of a curriculum or a teacher, lectures in
    /// unavailable periods); nonzero only when `relaxed`.
    pub hard: i64,
    /// Whether moves may break the curriculum, teacher and availability
    /// constraints (rooms always hold one lecture).
    pub relaxed: bool,
    /// Lectures taken out by the current move, with where they were.
    log: Vec<(u32, u16, u16)>,
}

impl<'a> CttState<'a> {
    pub fn new(k: &'a Compiled) -> Self {
        let n = k.n_lectures();
        CttState {
            k,
            period: vec![NOP; n],
            room: vec![NOP; n],
            at: vec![NO; k.np * k.nr],
            teacher_busy: vec![0; k.n_teachers * k.np],
            curr_mask: vec![0; k.nq * k.nd],
            curr_cnt: vec![0; k.nq * k.np],
            period_load: vec![0; k.np],
            curr_at: vec![NO; k.nq * k.np],
            teacher_at: vec![NO; k.n_teachers * k.np],
            course_day: vec![0; k.nc * k.nd],
            course_ndays: vec![0; k.nc],
            course_room: vec![0; k.nc * k.nr],
            course_nrooms: vec![0; k.nc],
            // Every course misses all its working days while nothing is placed.
            cost: k.mwd.iter().map(|&m| 5 * m as i64).sum(),
            hard: 0,
            relaxed: false,
            log: Vec::new(),
        }
    }

    /// Load a timetable; `None` when a lecture is missing or a hard
    /// constraint is broken.
    pub fn from_solution(k: &'a Compiled, sol: &Solution) -> Option<Self> {
        let mut s = CttState::new(k);
        for l in 0..k.n_lectures() {
            let (d, p) = (*sol.start.get(l)?)?;
            let r = (*sol.room.get(l)?)?;
            if d >= k.nd || p >= k.ppd || r >= k.nr {
                return None;
            }
            let t = d * k.ppd + p;
            let c = k.lec_course[l] as usize;
            if !s.can_place(c, t) || s.at[t * k.nr + r] != NO {
                return None;
            }
            s.insert(l, t, r);
        }
        Some(s)
    }

    /// Replace the timetable by the given periods and rooms (a timetable
    /// of the same instance), rebuilding the counts lecture by lecture.
    fn load(&mut self, period: &[u16], room: &[u16]) {
        let relaxed = self.relaxed;
        *self = CttState::new(self.k);
        self.relaxed = relaxed;
        for l in 0..period.len() {
            self.insert(l, period[l] as usize, room[l] as usize);
        }
    }

    pub fn to_solution(&self) -> Solution {
        let ppd = self.k.ppd;
        Solution {
            start: self
                .period
                .iter()
                .map(|&t| (t != NOP).then(|| (t as usize / ppd, t as usize % ppd)))
                .collect(),
            room: self
                .room
                .iter()
                .map(|&r| (r != NOP).then_some(r as usize))
                .collect(),
        }
    }

    /// Whether a lecture of course `c` may go to period `t` (rooms aside).
    #[inline]
    pub fn can_place(&self, c: usize, t: usize) -> bool {
        let k = self.k;
        if k.unavailable[c * k.np + t] || self.teacher_busy[k.teacher[c] as usize * k.np + t] != 0 {
            return false;
        }
        let (d, bit) = (t / k.ppd, 1u64 << (t % k.ppd));
        k.curricula[c]
            .iter()
            .all(|&q| self.curr_mask[q as usize * k.nd + d] & bit == 0)
    }

    #[inline]
    fn insert(&mut self, l: usize, t: usize, r: usize) {
        let k = self.k;
        let c = k.lec_course[l] as usize;
        let (d, bit) = (t / k.ppd, 1u64 << (t % k.ppd));
        debug_assert_eq!(self.at[t * k.nr + r], NO);
        self.at[t * k.nr + r] = l as u32;
        self.period_load[t] += 1;
        self.period[l] = t as u16;
        self.room[l] = r as u16;
        let ti = k.teacher[c] as usize * k.np + t;
        let tb = &mut self.teacher_busy[ti];
        let mut hard = (*tb > 0) as i64 + k.unavailable[c * k.np + t] as i64;
        *tb += 1;
        self.teacher_at[ti] = l as u32;
        let mut cost = k.cap_pen[c * k.nr + r] as i64;
        let cr = &mut self.course_room[c * k.nr + r];
        *cr += 1;
        if *cr == 1 {
            let n = &mut self.course_nrooms[c];
            *n += 1;
            if *n >= 2 {
                cost += 1;
            }
        }
        let cd = &mut self.course_day[c * k.nd + d];
        *cd += 1;
        if *cd == 1 {
            let n = &mut self.course_ndays[c];
            if *n < k.mwd[c] {
                cost -= 5;
            }
            *n += 1;
        }
        for &q in &k.curricula[c] {
            let qi = q as usize * k.np + t;
            self.curr_at[qi] = l as u32;
            let n = &mut self.curr_cnt[qi];
            *n += 1;
            if *n > 1 {
                hard += 1;
                continue;
            }
            let m = &mut self.curr_mask[q as usize * k.nd + d];
            let old = isolated(*m);
            *m |= bit;
            cost += 2 * (isolated(*m) - old);
        }
        self.cost += cost;
        self.hard += hard;
    }

    #[inline]
    fn remove(&mut self, l: usize) {
        let k = self.k;
        let c = k.lec_course[l] as usize;
        let (t, r) = (self.period[l] as usize, self.room[l] as usize);
        let (d, bit) = (t / k.ppd, 1u64 << (t % k.ppd));
        self.at[t * k.nr + r] = NO;
        self.period_load[t] -= 1;
        self.period[l] = NOP;
        self.room[l] = NOP;
        let ti = k.teacher[c] as usize * k.np + t;
        let tb = &mut self.teacher_busy[ti];
        *tb -= 1;
        if *tb == 0 {
            self.teacher_at[ti] = NO;
        }
        let mut hard = -((*tb > 0) as i64) - k.unavailable[c * k.np + t] as i64;
        let mut cost = -(k.cap_pen[c * k.nr + r] as i64);
        let cr = &mut self.course_room[c * k.nr + r];
        *cr -= 1;
        if *cr == 0 {
            let n = &mut self.course_nrooms[c];
            if *n >= 2 {
                cost -= 1;
            }
            *n -= 1;
        }
        let cd = &mut self.course_day[c * k.nd + d];
        *cd -= 1;
        if *cd == 0 {
            let n = &mut self.course_ndays[c];
            *n -= 1;
            if *n < k.mwd[c] {
                cost += 5;
            }
        }
        for &q in &k.curricula[c] {
            let qi = q as usize * k.np + t;
            let n = &mut self.curr_cnt[qi];
            *n -= 1;
            if *n == 0 {
                self.curr_at[qi] = NO;
            }
            if *n > 0 {
                hard -= 1;
                continue;
            }
            let m = &mut self.curr_mask[q as usize * k.nd + d];
            let old = isolated(*m);
            *m &= !bit;
            cost += 2 * (isolated(*m) - old);
        }
        self.cost += cost;
        self.hard += hard;
    }

    /// Take a lecture out as part of the current move.
    #[inline]
    fn take(&mut self, l: usize) {
        self.log.push((l as u32, self.period[l], self.room[l]));
        self.remove(l);
    }

    fn begin(&mut self) {
        self.log.clear();
    }

    /// Put every lecture of the current move back where it was.
    pub fn undo(&mut self) {
        let log = std::mem::take(&mut self.log);
        for &(l, _, _) in &log {
            if self.period[l as usize] != NOP {
                self.remove(l as usize);
            }
        }
        for &(l, t, r) in &log {
            self.insert(l as usize, t as usize, r as usize);
        }
        self.log = log;
        self.log.clear();
    }

    #[inline]
    fn occupant(&self, t: usize, r: usize) -> u32 {
        self.at[t * self.k.nr + r]
    }

    /// Move lecture `l` to (`t2`, `r2`), swapping with the lecture there if
    /// any; false (nothing changed) when that breaks a hard constraint.
    pub fn move_swap(&mut self, l: usize, t2: usize, r2: usize) -> bool {
        let k = self.k;
        let (t1, r1) = (self.period[l] as usize, self.room[l] as usize);
        if (t1, r1) == (t2, r2) {
            return false;
        }
        let l2 = self.occupant(t2, r2);
        if l2 != NO && k.lec_course[l2 as usize] == k.lec_course[l] && t1 != t2 {
            return false;
        }
        self.begin();
        self.take(l);
        if l2 != NO {
            self.take(l2 as usize);
        }
        if !self.relaxed && !self.can_place(k.lec_course[l] as usize, t2) {
            self.undo();
            return false;
        }
        self.insert(l, t2, r2);
        if l2 != NO {
            if !self.relaxed && !self.can_place(k.lec_course[l2 as usize] as usize, t1) {
                self.undo();
                return false;
            }
            self.insert(l2 as usize, t1, r1);
        }
        true
    }

    /// The change of the soft cost that `move_swap(l, t2, r2)` would make,
    /// computed without changing anything; `None` when `move_swap` would
    /// refuse the move. For the feasible-only search: most moves at low
    /// temperature are rejected, and evaluating them this way costs a
    /// fraction of applying and undoing them.
    pub fn delta_move_swap(&self, l: usize, t2: usize, r2: usize) -> Option<i64> {
        let k = self.k;
        debug_assert!(!self.relaxed);
        let (t1, r1) = (self.period[l] as usize, self.room[l] as usize);
        if (t1, r1) == (t2, r2) {
            return None;
        }
        let c = k.lec_course[l] as usize;
        let l2 = self.occupant(t2, r2);
        let c2 = if l2 == NO {
            usize::MAX
        } else {
            k.lec_course[l2 as usize] as usize
        };
        if c2 == c {
            // Two lectures of a course never share a period here.
            return if t1 == t2 { Some(0) } else { None };
        }
        let mut delta = self.room_delta(c, r1, r2);
        if c2 != usize::MAX {
            delta += self.room_delta(c2, r2, r1);
        }
        if t1 == t2 {
            return Some(delta);
        }
        let no_curricula: &[u32] = &[];
        let q2s = if c2 == usize::MAX {
            no_curricula
        } else {
            &k.curricula[c2][..]
        };
        // Course c goes to t2 (l2, if any, leaves it).
        let tc = k.teacher[c] as usize;
        let freed = (c2 != usize::MAX && k.teacher[c2] as usize == tc) as u16;
        if k.unavailable[c * k.np + t2] || self.teacher_busy[tc * k.np + t2] > freed {
            return None;
        }
        let (d1, b1) = (t1 / k.ppd, 1u64 << (t1 % k.ppd));
        let (d2, b2) = (t2 / k.ppd, 1u64 << (t2 % k.ppd));
        for &q in &k.curricula[c] {
            if q2s.contains(&q) {
                continue;
            }
            let m2 = self.curr_mask[q as usize * k.nd + d2];
            if m2 & b2 != 0 {
                return None;
            }
            delta += self.shift_delta(q as usize, d1, b1, d2, b2);
        }
        if c2 != usize::MAX {
            // Course c2 goes to t1 (l leaves it).
            let tc2 = k.teacher[c2] as usize;
            let freed = (tc2 == tc) as u16;
            if k.unavailable[c2 * k.np + t1] || self.teacher_busy[tc2 * k.np + t1] > freed {
                return None;
            }
            for &q in q2s {
                if k.curricula[c].contains(&q) {
                    continue;
                }
                if self.curr_mask[q as usize * k.nd + d1] & b1 != 0 {
                    return None;
                }
                delta += self.shift_delta(q as usize, d2, b2, d1, b1);
            }
            delta += self.day_delta(c2, d2, d1);
        }
        Some(delta + self.day_delta(c, d1, d2))
    }

    /// Soft cost change when a lecture of course `c` moves from room `from`
    /// to room `to`, its other lectures staying (capacity, room stability).
    #[inline]
    fn room_delta(&self, c: usize, from: usize, to: usize) -> i64 {
        let k = self.k;
        if from == to {
            return 0;
        }
        let rooms = &self.course_room[c * k.nr..(c + 1) * k.nr];
        let n = self.course_nrooms[c] as i64;
        let n2 = used_after_move(n, rooms, from, to);
        k.cap_pen[c * k.nr + to] as i64 - k.cap_pen[c * k.nr + from] as i64 + (n2 - 1).max(0)
            - (n - 1).max(0)
    }

    /// Soft cost change when a lecture of course `c` moves from day `from`
    /// to day `to` (minimum working days).
    #[inline]
    fn day_delta(&self, c: usize, from: usize, to: usize) -> i64 {
        let k = self.k;
        if from == to {
            return 0;
        }
        let days = &self.course_day[c * k.nd..(c + 1) * k.nd];
        let n = self.course_ndays[c] as i64;
        let n2 = used_after_move(n, days, from, to);
        let m = k.mwd[c] as i64;
        5 * ((m - n2).max(0) - (m - n).max(0))
    }

    /// Compactness change of curriculum `q` when its lecture at (`d1`,
    /// bit `b1`) moves to the free (`d2`, bit `b2`).
    #[inline]
    fn shift_delta(&self, q: usize, d1: usize, b1: u64, d2: usize, b2: u64) -> i64 {
        let k = self.k;
        let m1 = self.curr_mask[q * k.nd + d1];
        if d1 == d2 {
            return 2 * (isolated((m1 & !b1) | b2) - isolated(m1));
        }
        let m2 = self.curr_mask[q * k.nd + d2];
        2 * (isolated(m1 & !b1) - isolated(m1) + isolated(m2 | b2) - isolated(m2))
    }

    /// Plan the exchange of the Kempe chain of `l` between its period and
    /// `t2`: `plan` receives each lecture of the chain with its new period
    /// and room. Rooms are kept where free, else the free room that suits
    /// the course best (capacity, then a room it already uses). False when
    /// no such exchange exists. Changes nothing.
    pub fn kempe_plan(&self, l: usize, t2: usize, chain: &mut Chain, plan: &mut Plan) -> bool {
        let k = self.k;
        let t1 = self.period[l] as usize;
        if t1 == t2 {
            return false;
        }
        chain.start(k.n_lectures(), 2 * k.nr);
        let epoch = chain.epoch;
        chain.add(l as u32, false);
        let mut i = 0;
        while i < chain.members.len() {
            let (x, side) = chain.members[i];
            i += 1;
            let cx = k.lec_course[x as usize] as usize;
            let to = if side { t1 } else { t2 };
            if !self.relaxed && k.unavailable[cx * k.np + to] {
                return false;
            }
            if self.relaxed {
                // Several lectures may share a curriculum's or teacher's period.
                let conflict = &k.conflict[cx * k.nc..(cx + 1) * k.nc];
                for &y in &self.at[to * k.nr..(to + 1) * k.nr] {
                    if y != NO
                        && conflict[k.lec_course[y as usize] as usize]
                        && chain.mark[y as usize] != epoch
                    {
                        chain.add(y, !side);
                    }
                }
                continue;
            }
            // The lectures in conflict: those of its curricula and its
            // teacher (which include its own course's) at that period.
            let added = chain.members.len();
            let y = self.teacher_at[k.teacher[cx] as usize * k.np + to];
            if y != NO && chain.mark[y as usize] != epoch {
                chain.add(y, !side);
            }
            for &q in &k.curricula[cx] {
                let y = self.curr_at[q as usize * k.np + to];
                if y != NO && chain.mark[y as usize] != epoch {
                    chain.add(y, !side);
                }
            }
            // In room order, as a scan of the period would find them: the
            // order decides who gets which free room.
            chain.members[added..].sort_unstable_by_key(|&(y, _)| self.room[y as usize]);
        }
        let n1 = chain.members.iter().filter(|x| !x.1).count();
        let n2 = chain.members.len() - n1;
        if n1 != n2 {
            let count = |t: usize| self.period_load[t] as usize;
            if count(t2) + n1 - n2 > k.nr || count(t1) + n2 - n1 > k.nr {
                return false;
            }
        }
        // A room at the destination is free when empty or left by a
        // lecture of the chain (which then sits at the other period), and
        // not yet given to another lecture of the chain.
        let free = |chain: &Chain, side: bool, r: usize| {
            let to = if side { t1 } else { t2 };
            let y = self.at[to * k.nr + r];
            (y == NO || chain.mark[y as usize] == epoch)
                && chain.taken[side as usize * k.nr + r] != epoch
        };
        plan.clear();
        for i in 0..chain.members.len() {
            let (x, side) = chain.members[i];
            let to = if side { t1 } else { t2 };
            let r = self.room[x as usize] as usize;
            let r = if free(chain, side, r) {
                chain.taken[side as usize * k.nr + r] = epoch;
                r as u16
            } else {
                NOP
            };
            plan.push((x, to as u16, r));
        }
        for i in 0..plan.len() {
            if plan[i].2 != NOP {
                continue;
            }
            let (x, side) = chain.members[i];
            let c = k.lec_course[x as usize] as usize;
            // Whether the course keeps using a room: its lectures there,
            // less those of the chain (which leave), plus those of the
            // chain already given that room.
            chain.adjust.clear();
            for (j, &(y, _)) in chain.members.iter().enumerate() {
                if k.lec_course[y as usize] as usize == c {
                    chain.adjust.push((self.room[y as usize], -1));
                    if plan[j].2 != NOP {
                        chain.adjust.push((plan[j].2, 1));
                    }
                }
            }
            let uses = |chain: &Chain, r: usize| {
                let n = self.course_room[c * k.nr + r] as i32;
                let d: i32 = chain
                    .adjust
                    .iter()
                    .filter(|a| a.0 as usize == r)
                    .map(|a| a.1)
                    .sum();
                n + d > 0
            };
            let mut best: Option<(u32, usize)> = None;
            for r in 0..k.nr {
                if !free(chain, side, r) {
                    continue;
                }
                let v = k.cap_pen[c * k.nr + r] + !uses(chain, r) as u32;
                if best.is_none_or(|(b, _)| v < b) {
                    best = Some((v, r));
                }
            }
            match best {
                Some((_, r)) => {
                    chain.taken[side as usize * k.nr + r] = epoch;
                    plan[i].2 = r as u16;
                }
                None => return false,
            }
        }
        true
    }

    /// Move every lecture of `plan` to its new period and room at once.
    pub fn apply_plan(&mut self, plan: &Plan) {
        self.begin();
        for &(x, _, _) in plan {
            self.take(x as usize);
        }
        for &(x, t, r) in plan {
            self.insert(x as usize, t as usize, r as usize);
        }
    }

    /// The change of the soft cost that applying the plan of
    /// [`CttState::kempe_plan`] would make, computed without changing
    /// anything (feasible-only search). A Kempe chain holds, for each
    /// curriculum and teacher it touches, every lecture of theirs at both
    /// periods, so each curriculum's busy periods just swap, and a course
    /// has at most one lecture on each side.
    pub fn kempe_delta(&self, chain: &Chain, plan: &Plan) -> i64 {
        let k = self.k;
        debug_assert!(!self.relaxed);
        let Some(&(first, _)) = chain.members.first() else {
            return 0;
        };
        let (t1, t2) = (self.period[first as usize] as usize, plan[0].1 as usize);
        let (d1, b1) = (t1 / k.ppd, 1u64 << (t1 % k.ppd));
        let (d2, b2) = (t2 / k.ppd, 1u64 << (t2 % k.ppd));
        let mut delta = 0i64;
        for (i, &(x, side)) in chain.members.iter().enumerate() {
            let c = k.lec_course[x as usize] as usize;
            let (from, to) = if side { (t2, t1) } else { (t1, t2) };
            let (r_from, r_to) = (self.room[x as usize] as usize, plan[i].2 as usize);
            // The course's lecture at the other period, in the chain too.
            let y = self.teacher_at[k.teacher[c] as usize * k.np + to];
            if y != NO && k.lec_course[y as usize] as usize == c {
                if !side {
                    let j = chain
                        .members
                        .iter()
                        .position(|m| m.0 == y)
                        .expect("in the chain");
                    let (ry_from, ry_to) = (self.room[y as usize] as usize, plan[j].2 as usize);
                    delta += self.two_rooms_delta(c, [(r_from, r_to), (ry_from, ry_to)]);
                }
            } else {
                delta +=
                    self.room_delta(c, r_from, r_to) + self.day_delta(c, from / k.ppd, to / k.ppd);
            }
            // A curriculum with lectures at both periods keeps both busy,
            // so only one whose lecture is alone in the chain changes.
            for &q in &k.curricula[c] {
                let qd = q as usize * k.nd;
                let m1 = self.curr_mask[qd + d1];
                if d1 == d2 {
                    if (m1 & b1 != 0) != (m1 & b2 != 0) {
                        delta += 2 * (isolated(m1 ^ (b1 | b2)) - isolated(m1));
                    }
                    continue;
                }
                let m2 = self.curr_mask[qd + d2];
                if (m1 & b1 != 0) != (m2 & b2 != 0) {
                    delta +=
                        2 * (isolated(m1 ^ b1) - isolated(m1) + isolated(m2 ^ b2) - isolated(m2));
                }
            }
        }
        delta
    }

    /// Soft cost change when two lectures of course `c` change rooms
    /// (from, to) at once (capacity, room stability).
    fn two_rooms_delta(&self, c: usize, moves: [(usize, usize); 2]) -> i64 {
        let k = self.k;
        let mut delta = 0i64;
        let mut counts: [(usize, i32); 4] = [(usize::MAX, 0); 4];
        let mut bump = |r: usize, d: i32| {
            if let Some(e) = counts.iter_mut().find(|e| e.0 == r || e.0 == usize::MAX) {
                e.0 = r;
                e.1 += d;
            }
        };
        for (from, to) in moves {
            delta += k.cap_pen[c * k.nr + to] as i64 - k.cap_pen[c * k.nr + from] as i64;
            bump(from, -1);
            bump(to, 1);
        }
        let n = self.course_nrooms[c] as i64;
        let mut n2 = n;
        for (r, d) in counts {
            if r != usize::MAX {
                let old = self.course_room[c * k.nr + r] as i32;
                n2 += (old + d > 0) as i64 - (old > 0) as i64;
            }
        }
        delta + (n2 - 1).max(0) - (n - 1).max(0)
    }

    /// Exchange the lectures of the Kempe chain of `l` between its period
    /// and `t2` (see [`CttState::kempe_plan`]).
    pub fn kempe(&mut self, l: usize, t2: usize, chain: &mut Chain, plan: &mut Plan) -> bool {
        if !self.kempe_plan(l, t2, chain, plan) {
            return false;
        }
        self.apply_plan(plan);
        true
    }

    /// Put every lecture of course `c` into room `r` (swapping with the
    /// lectures there, which take the freed rooms).
    pub fn course_room(&mut self, c: usize, r: usize) -> bool {
        let k = self.k;
        self.begin();
        for i in 0..k.course_lecs[c].len() {
            let l = k.course_lecs[c][i] as usize;
            let (t, r1) = (self.period[l] as usize, self.room[l] as usize);
            if r1 == r {
                continue;
            }
            let y = self.occupant(t, r);
            if y != NO && k.lec_course[y as usize] as usize == c {
                // Two lectures of the course in one period (relaxed only).
                continue;
            }
            self.take(l);
            if y != NO {
                self.take(y as usize);
                self.insert(y as usize, t, r1);
            }
            self.insert(l, t, r);
        }
        !self.log.is_empty()
    }

    /// Recount the soft cost from scratch (for checks).
    pub fn recount(&self) -> i64 {
        let k = self.k;
        let mut cost = 0i64;
        for c in 0..k.nc {
            let mut days = 0u64;
            let mut rooms = vec![false; k.nr];
            for &l in &k.course_lecs[c] {
                let (t, r) = (self.period[l as usize], self.room[l as usize]);
                if t == NOP {
                    continue;
                }
                days |= 1 << (t as usize / k.ppd);
                rooms[r as usize] = true;
                cost += k.cap_pen[c * k.nr + r as usize] as i64;
            }
            cost += 5 * (k.mwd[c] as i64 - days.count_ones() as i64).max(0);
            cost += (rooms.iter().filter(|&&x| x).count() as i64 - 1).max(0);
        }
        let mut masks = vec![0u64; k.nq * k.nd];
        for (l, &t) in self.period.iter().enumerate() {
            if t == NOP {
                continue;
            }
            let c = k.lec_course[l] as usize;
            for &q in &k.curricula[c] {
                masks[q as usize * k.nd + t as usize / k.ppd] |= 1 << (t as usize % k.ppd);
            }
        }
        cost + 2 * masks.iter().map(|&m| isolated(m)).sum::<i64>()
    }

    /// Recount the hard violations from scratch (for checks).
    pub fn recount_hard(&self) -> i64 {
        let k = self.k;
        let mut hard = 0i64;
        let mut teacher = vec![0i64; k.n_teachers * k.np];
        let mut curr = vec![0i64; k.nq * k.np];
        for (l, &t) in self.period.iter().enumerate() {
            if t == NOP {
                continue;
            }
            let (c, t) = (k.lec_course[l] as usize, t as usize);
            hard += k.unavailable[c * k.np + t] as i64;
            teacher[k.teacher[c] as usize * k.np + t] += 1;
            for &q in &k.curricula[c] {
                curr[q as usize * k.np + t] += 1;
            }
        }
        hard + teacher
            .iter()
            .chain(curr.iter())
            .map(|&n| (n - 1).max(0))
            .sum::<i64>()
    }

    /// Whether every lecture is placed without a hard violation (for checks).
    pub fn feasible(&self) -> bool {
        let k = self.k;
        let mut seen = vec![false; k.np * k.nr];
        for l in 0..k.n_lectures() {
            let (t, r) = (self.period[l], self.room[l]);
            if t == NOP || r == NOP {
                return false;
            }
            let (t, r) = (t as usize, r as usize);
            if seen[t * k.nr + r] || self.at[t * k.nr + r] != l as u32 {
                return false;
            }
            seen[t * k.nr + r] = true;
            let c = k.lec_course[l] as usize;
            if k.unavailable[c * k.np + t] {
                return false;
            }
            for m in l + 1..k.n_lectures() {
                let cm = k.lec_course[m] as usize;
                if self.period[m] as usize == t && k.conflict[c * k.nc + cm] {
                    return false;
                }
            }
        }
        true
    }
}

/// Tuning of the annealing.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Start and end temperature (geometric cooling over the run).
    pub t0: f64,
    pub t1: f64,
    /// Per cent of moves that are Move/Swap, Kempe chains and room moves
    /// (the rest: whole-course room moves).
    pub p_move: u32,
    pub p_kempe: u32,
    pub p_room: u32,
    /// Annealing cycles over the run, and the start temperature of the
    /// cycles after the first.
    pub cycles: u32,
    pub reheat: f64,
    /// Weight of a hard violation in the annealing's objective; 0 keeps the
    /// search among feasible timetables.
    pub hard_weight: i64,
    /// Bounds of the weight and its factor per 1024 moves.
    pub weight_min: f64,
    pub weight_max: f64,
    pub weight_up: f64,
    /// Threads exchange their best timetable at the start of each cycle.
    pub share: bool,
    /// Multiply the start and reheat temperatures by max(1, curricula per
    /// lecture / `scale_ref`) (0: no scaling).
    pub scale_ref: f64,
}

impl Schedule {
    /// The schedule with its temperatures scaled to the instance.
    pub fn scaled(mut self, k: &Compiled) -> Self {
        if self.scale_ref > 0.0 {
            let f = (k.curricula_per_lecture() / self.scale_ref).max(1.0);
            self.t0 *= f;
            self.reheat *= f;
        }
        self
    }
}

impl Default for Schedule {
    /// Tuned on comp02..comp07 with 30 s and 120 s runs: the end result
    /// hardly depends on the cooling length, so the run is split into four
    /// cycles, each restarting from the best timetable with a reheat.
    /// Temperatures about twice as high (what `scale_ref` gives comp05,
    /// with about 10 curricula per lecture) lowered comp05's cost by about
    /// 9 % in 60-million-move runs and left comp06/comp07 unchanged.
    fn default() -> Self {
        Schedule {
            t0: 4.0,
            t1: 0.05,
            p_move: 40,
            p_kempe: 35,
            p_room: 15,
            cycles: 4,
            reheat: 2.0,
            hard_weight: 0,
            weight_min: 2.0,
            weight_max: 200.0,
            weight_up: 1.01,
            share: false,
            scale_ref: 5.0,
        }
    }
}

/// Annealing state: the current and the best timetable.
pub struct Anneal<'a, 'r> {
    pub schedule: Schedule,
    pub st: CttState<'a>,
    pub best: CttState<'a>,
    rng: &'r mut ChaCha8Rng,
    chain: Chain,
    plan: Plan,
    /// Current weight of a hard violation (relaxed search).
    pub weight: i64,
}

impl<'a, 'r> Anneal<'a, 'r> {
    pub fn new(st: CttState<'a>, rng: &'r mut ChaCha8Rng) -> Self {
        Anneal {
            schedule: Schedule::default(),
            best: st.clone(),
            st,
            rng,
            chain: Chain::default(),
            plan: Vec::new(),
            weight: 0,
        }
    }

    /// A random move (drawing from the generator), not yet applied.
    fn propose(&mut self) -> Move {
        let k = self.st.k;
        let n = k.n_lectures();
        if n == 0 {
            return Move::None;
        }
        let l = self.rng.gen_range(0..n);
        let x = self.rng.gen_range(0..100u32);
        let sc = self.schedule;
        if x < sc.p_move {
            let t2 = self.rng.gen_range(0..k.np);
            let r2 = if self.rng.gen_bool(0.5) {
                self.st.room[l] as usize
            } else {
                self.rng.gen_range(0..k.nr)
            };
            Move::Relocate(l, t2, r2)
        } else if x < sc.p_move + sc.p_kempe {
            Move::Kempe(l, self.rng.gen_range(0..k.np))
        } else if x < sc.p_move + sc.p_kempe + sc.p_room {
            let t = self.st.period[l] as usize;
            Move::Relocate(l, t, self.rng.gen_range(0..k.nr))
        } else {
            let c = k.lec_course[l] as usize;
            if self.st.course_nrooms[c] < 2 {
                return Move::None;
            }
            let lecs = &k.course_lecs[c];
            let r = self.st.room[lecs[self.rng.gen_range(0..lecs.len())] as usize] as usize;
            Move::CourseRoom(c, r)
        }
    }

    /// Apply a move; false when it was not possible (nothing changed).
    fn apply(&mut self, mv: Move) -> bool {
        match mv {
            Move::Relocate(l, t2, r2) => self.st.move_swap(l, t2, r2),
            Move::Kempe(l, t2) => self.st.kempe(l, t2, &mut self.chain, &mut self.plan),
            Move::CourseRoom(c, r) => self.st.course_room(c, r),
            Move::None => false,
        }
    }

    /// One random move, applied; false when none was possible.
    pub fn random_move(&mut self) -> bool {
        let mv = self.propose();
        self.apply(mv)
    }

    #[inline]
    fn accept(&mut self, delta: i64, temp: f64) -> bool {
        delta <= 0 || self.rng.gen::<f64>() < (-(delta as f64) / temp).exp()
    }

    /// Annealing step at temperature `temp`: a move, kept or undone.
    /// Returns whether the best timetable improved.
    #[inline]
    pub fn step(&mut self, temp: f64) -> bool {
        let mv = self.propose();
        if let (Move::Relocate(l, t2, r2), false) = (mv, self.st.relaxed) {
            // Evaluated before it is applied: only accepted moves are made.
            let Some(delta) = self.st.delta_move_swap(l, t2, r2) else {
                return false;
            };
            if !self.accept(delta, temp) {
                return false;
            }
            let before = self.st.cost;
            let moved = self.st.move_swap(l, t2, r2);
            debug_assert!(moved && self.st.cost - before == delta);
            return self.improved();
        }
        if let (Move::Kempe(l, t2), false) = (mv, self.st.relaxed) {
            if !self.st.kempe_plan(l, t2, &mut self.chain, &mut self.plan) {
                return false;
            }
            let delta = self.st.kempe_delta(&self.chain, &self.plan);
            if !self.accept(delta, temp) {
                return false;
            }
            let before = self.st.cost;
            self.st.apply_plan(&self.plan);
            debug_assert_eq!(self.st.cost - before, delta);
            return self.improved();
        }
        let w = self.weight;
        let before = self.st.cost + w * self.st.hard;
        if !self.apply(mv) {
            return false;
        }
        let delta = self.st.cost + w * self.st.hard - before;
        if self.accept(delta, temp) {
            return self.improved();
        }
        self.st.undo();
        false
    }

    /// Keep the current timetable as the best if it is (after an accepted move).
    #[inline]
    fn improved(&mut self) -> bool {
        if self.st.hard == 0 && self.st.cost < self.best.cost {
            self.best.clone_from(&self.st);
            return true;
        }
        false
    }
}

/// A move of the annealing: Move/Swap of a lecture to (period, room), a
/// Kempe chain from a lecture to a period, all lectures of a course into
/// a room.
#[derive(Debug, Clone, Copy)]
enum Move {
    Relocate(usize, usize, usize),
    Kempe(usize, usize),
    CourseRoom(usize, usize),
    None,
}

/// A timetable in the threads' pool: cost, periods, rooms.
type Pooled = (i64, Vec<u16>, Vec<u16>);

struct Shared<'a> {
    started: Instant,
    deadline: Instant,
    cancel: &'a AtomicBool,
    progress: &'a (dyn Fn(&Progress) + Sync),
    best: AtomicI64,
    lock: Mutex<()>,
    /// The best timetable of all threads (cost, periods, rooms), exchanged
    /// at the start of each annealing cycle when `share` is set.
    pool: Mutex<Option<Pooled>>,
    share: bool,
}

impl Shared<'_> {
    /// Publish `best` if it beats the pool, else take the pool's timetable.
    fn exchange(&self, best: &mut CttState) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        match pool.as_ref() {
            Some((cost, period, room)) if *cost < best.cost => best.load(period, room),
            Some((cost, _, _)) if *cost == best.cost => {}
            _ => *pool = Some((best.cost, best.period.clone(), best.room.clone())),
        }
    }
}

impl Shared<'_> {
    fn report(&self, thread: usize, soft: i64) {
        if soft >= self.best.load(Ordering::Relaxed) {
            return;
        }
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if soft < self.best.load(Ordering::Relaxed) {
            self.best.store(soft, Ordering::Relaxed);
            (self.progress)(&Progress {
                thread,
                seconds: self.started.elapsed().as_secs_f64(),
                hard: 0,
                soft,
            });
        }
    }
}

/// One annealing run until the deadline (or `max_iter` iterations, which
/// then also drive the temperature, so the run is reproducible). Returns
/// the best timetable and the iterations done.
fn anneal_thread<'a>(
    start: &CttState<'a>,
    seed: u64,
    thread: usize,
    max_iter: Option<u64>,
    schedule: Schedule,
    shared: &Shared,
) -> (CttState<'a>, u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed.wrapping_add(thread as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ 0x5EED,
    );
    let mut a = Anneal::new(start.clone(), &mut rng);
    a.schedule = schedule;
    a.st.relaxed = schedule.hard_weight > 0;
    let mut wf = schedule.hard_weight as f64;
    a.weight = schedule.hard_weight;
    let begin = Instant::now();
    let budget = shared
        .deadline
        .saturating_duration_since(begin)
        .as_secs_f64();
    let mut temp = schedule.t0;
    let mut cur_cycle = 0;
    let mut iter: u64 = 0;
    loop {
        if iter % 1024 == 0 {
            let frac = match max_iter {
                Some(m) => {
                    if iter >= m {
                        break;
                    }
                    iter as f64 / m.max(1) as f64
                }
                None => {
                    let now = Instant::now();
                    if now >= shared.deadline || budget <= 0.0 {
                        break;
                    }
                    (now - begin).as_secs_f64() / budget
                }
            };
            if shared.cancel.load(Ordering::Relaxed) || a.best.cost == 0 {
                break;
            }
            // Cycles: each restarts from the best timetable with a reheat.
            let f = frac.min(0.999_999) * schedule.cycles as f64;
            let cycle = f as u32;
            if a.st.relaxed {
                // Strategic oscillation: the weight grows while the current
                // timetable breaks hard constraints and shrinks otherwise.
                wf = if a.st.hard > 0 {
                    (wf * schedule.weight_up).min(schedule.weight_max)
                } else {
                    (wf / schedule.weight_up).max(schedule.weight_min)
                };
                a.weight = wf.round() as i64;
            }
            if cycle != cur_cycle {
                cur_cycle = cycle;
                if shared.share {
                    shared.exchange(&mut a.best);
                }
                a.st.clone_from(&a.best);
            }
            let t0 = if cycle == 0 {
                schedule.t0
            } else {
                schedule.reheat
            };
            temp = t0 * (schedule.t1 / t0).powf(f - cycle as f64);
        }
        iter += 1;
        if a.step(temp) {
            shared.report(thread, a.best.cost);
        }
    }
    (a.best, iter)
}

/// Solve an ITC-2007 instance: the generic solver up to the first feasible
/// timetable, then simulated annealing on the soft cost in `opts.threads`
/// independent threads (seeds `seed`, `seed+1`, …); the best is kept.
pub fn solve(
    inst: &Instance,
    opts: &SolveOptions,
    progress: &(dyn Fn(&Progress) + Sync),
) -> crate::Result<SolveResult> {
    solve_with(inst, opts, Schedule::default(), progress)
}

pub fn solve_with(
    inst: &Instance,
    opts: &SolveOptions,
    schedule: Schedule,
    progress: &(dyn Fn(&Progress) + Sync),
) -> crate::Result<SolveResult> {
    let started = Instant::now();
    let model = crate::itc::to_model(inst);
    let first_opts = SolveOptions {
        stop_at_feasible: true,
        polish: None,
        strict_soft: None,
        ..opts.clone()
    };
    let first = solver::solve(&model, &first_opts, progress)?;
    let k = Compiled::new(inst);
    let schedule = schedule.scaled(&k);
    let start = match CttState::from_solution(&k, &first.solution) {
        Some(s) if first.cost.hard == 0 && first.relaxed.is_empty() => s,
        _ => return Ok(first),
    };
    let polish_only = opts.stop_at_feasible;
    if (polish_only && opts.polish.is_none()) || opts.cancel.load(Ordering::Relaxed) {
        return Ok(first);
    }
    let mut deadline = started + opts.time_limit;
    if let (true, Some(p)) = (polish_only, opts.polish) {
        deadline = deadline.min(Instant::now() + p);
    }
    let max_iter = opts
        .max_iterations
        .map(|m| m.saturating_sub(first.iterations / opts.threads.max(1) as u64));
    let shared = Shared {
        started,
        deadline,
        cancel: &opts.cancel,
        progress,
        best: AtomicI64::new(first.cost.soft),
        lock: Mutex::new(()),
        pool: Mutex::new(None),
        // Exchanging timetables depends on timing: off for reproducible
        // (iteration-limited) runs.
        share: schedule.share && max_iter.is_none(),
    };
    let threads = opts.threads.max(1);
    let results: Vec<(CttState, u64)> = if threads == 1 {
        vec![anneal_thread(
            &start, opts.seed, 0, max_iter, schedule, &shared,
        )]
    } else {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let (start, shared) = (&start, &shared);
                    s.spawn(move || anneal_thread(start, opts.seed, t, max_iter, schedule, shared))
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("an annealing thread panicked"))
                .collect()
        })
    };
    let mut iterations = first.iterations;
    let mut best: Option<CttState> = None;
    for (st, it) in results {
        iterations += it;
        if best.as_ref().is_none_or(|b| st.cost < b.cost) {
            best = Some(st);
        }
    }
    let best = best.unwrap_or(start);
    Ok(SolveResult {
        solution: best.to_solution(),
        cost: Cost {
            hard: 0,
            soft: best.cost,
        },
        seconds: started.elapsed().as_secs_f64(),
        first_feasible: first.first_feasible,
        iterations,
        relaxed: Vec::new(),
        explanation: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::itc;
    use proptest::prelude::{prop_assume, proptest, ProptestConfig};

    const COMP01: &str = include_str!("../tests/data/comp01.ctt");

    fn lectures(k: &Compiled, st: &CttState) -> Vec<itc::Lecture> {
        (0..k.n_lectures())
            .map(|l| {
                let t = st.period[l] as usize;
                (
                    k.lec_course[l] as usize,
                    st.room[l] as usize,
                    t / k.ppd,
                    t % k.ppd,
                )
            })
            .collect()
    }

    fn feasible_start(inst: &Instance, seed: u64) -> Option<Solution> {
        let opts = SolveOptions {
            seed,
            stop_at_feasible: true,
            max_iterations: Some(20_000),
            ..SolveOptions::default()
        };
        let r = solver::solve(&itc::to_model(inst), &opts, &|_| {}).ok()?;
        (r.cost.hard == 0).then_some(r.solution)
    }

    /// Random moves, kept or undone at random: the incremental cost must
    /// equal a recount and the competition's scorer, and the timetable
    /// must stay feasible.
    ///
    /// With `relaxed`, moves may break the curriculum, teacher and
    /// availability constraints: the incremental hard count must equal a
    /// recount, and the soft cost the scorer's whenever it is zero.
    fn check_moves(inst: &Instance, sol: &Solution, seed: u64, steps: usize, relaxed: bool) {
        let k = Compiled::new(inst);
        let mut st = CttState::from_solution(&k, sol).expect("feasible start");
        st.relaxed = relaxed;
        let score = itc::score(inst, &lectures(&k, &st));
        assert_eq!(score.hard(), 0);
        assert_eq!(st.cost, score.soft() as i64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut a = Anneal::new(st, &mut rng);
        for i in 0..steps {
            let before = a.st.cost;
            let hard_before = a.st.hard;
            let moved = a.random_move();
            if moved && i % 3 == 0 {
                a.st.undo();
                assert_eq!(a.st.cost, before);
                assert_eq!(a.st.hard, hard_before);
            }
            if relaxed {
                if i % 17 == 0 || i + 1 == steps {
                    assert_eq!(a.st.cost, a.st.recount(), "step {i}");
                    assert_eq!(a.st.hard, a.st.recount_hard(), "step {i}");
                    let s = itc::score(inst, &lectures(&k, &a.st));
                    assert_eq!(a.st.hard == 0, s.hard() == 0, "step {i}");
                    assert_eq!(a.st.hard == 0, a.st.feasible(), "step {i}");
                    if a.st.hard == 0 {
                        assert_eq!(a.st.cost, s.soft() as i64, "step {i}");
                    }
                }
                // Undo now and then whatever was broken, so feasible
                // timetables come back often enough to be compared.
                if a.st.hard > 0 && i % 5 == 0 && moved {
                    a.st.undo();
                }
                continue;
            }
            assert_eq!(a.st.hard, 0);
            if i % 17 == 0 || i + 1 == steps {
                assert!(a.st.feasible(), "step {i}");
                assert_eq!(a.st.cost, a.st.recount(), "step {i}");
                let s = itc::score(inst, &lectures(&k, &a.st));
                assert_eq!(s.hard(), 0, "step {i}");
                assert_eq!(a.st.cost, s.soft() as i64, "step {i}");
            }
        }
    }

    /// Moves evaluated before they are applied: the computed change must
    /// equal the change of the applied move, and a move refused by the
    /// evaluation must be refused when applied.
    fn check_deltas(inst: &Instance, sol: &Solution, seed: u64, steps: usize) {
        let k = Compiled::new(inst);
        let mut st = CttState::from_solution(&k, sol).expect("feasible start");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut chain, mut plan) = (Chain::default(), Plan::new());
        let (mut evaluated, mut refused) = (0, 0);
        for i in 0..steps {
            let l = rng.gen_range(0..k.n_lectures());
            let t2 = rng.gen_range(0..k.np);
            let before = st.cost;
            let moved = if rng.gen_bool(0.5) {
                let r2 = rng.gen_range(0..k.nr);
                let delta = st.delta_move_swap(l, t2, r2);
                let moved = st.move_swap(l, t2, r2);
                assert_eq!(delta.is_some(), moved, "step {i}");
                if let Some(d) = delta {
                    assert_eq!(st.cost - before, d, "step {i}: move/swap");
                }
                moved
            } else if st.kempe_plan(l, t2, &mut chain, &mut plan) {
                let d = st.kempe_delta(&chain, &plan);
                st.apply_plan(&plan);
                assert_eq!(
                    st.cost - before,
                    d,
                    "step {i}: Kempe chain of {}",
                    plan.len()
                );
                true
            } else {
                false
            };
            if moved {
                evaluated += 1;
            } else {
                refused += 1;
                assert_eq!(st.cost, before);
            }
            assert_eq!(st.hard, 0);
            if moved && i % 3 == 0 {
                st.undo();
                assert_eq!(st.cost, before);
            }
            if i % 97 == 0 {
                assert!(st.feasible(), "step {i}");
                assert_eq!(st.cost, st.recount(), "step {i}");
            }
        }
        assert!(
            evaluated > 0 && refused > 0,
            "{evaluated} evaluated, {refused} refused"
        );
    }

    #[test]
    fn evaluated_moves_match_applied_moves_on_comp01() {
        let inst = itc::read_ctt(COMP01).unwrap();
        let sol = feasible_start(&inst, 3).unwrap();
        check_deltas(&inst, &sol, 13, 20_000);
    }

    #[test]
    fn incremental_cost_matches_scorer_on_comp01() {
        let inst = itc::read_ctt(COMP01).unwrap();
        let sol = feasible_start(&inst, 3).unwrap();
        check_moves(&inst, &sol, 5, 20_000, false);
    }

    /// A timetable exchanged between threads is rebuilt with the same
    /// incremental counts as the original.
    #[test]
    fn loaded_timetable_has_the_same_cost() {
        let inst = itc::read_ctt(COMP01).unwrap();
        let sol = feasible_start(&inst, 4).unwrap();
        let k = Compiled::new(&inst);
        let st = CttState::from_solution(&k, &sol).unwrap();
        let mut other = st.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut a = Anneal::new(st, &mut rng);
        for _ in 0..5_000 {
            a.step(1.0);
        }
        other.load(&a.best.period, &a.best.room);
        assert_eq!(other.cost, a.best.cost);
        assert_eq!(other.cost, other.recount());
        assert_eq!(other.hard, 0);
        assert_eq!(other.to_solution(), a.best.to_solution());
        assert!(other.feasible());
        // The rebuilt state keeps working incrementally.
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let mut b = Anneal::new(other, &mut rng);
        for _ in 0..5_000 {
            b.step(1.0);
        }
        assert_eq!(b.st.cost, b.st.recount());
        assert!(b.st.feasible());
    }

    #[test]
    fn relaxed_incremental_cost_matches_recount_on_comp01() {
        let inst = itc::read_ctt(COMP01).unwrap();
        let sol = feasible_start(&inst, 3).unwrap();
        check_moves(&inst, &sol, 7, 20_000, true);
    }

    /// A random small instance with room to spare, so construction succeeds.
    fn random_instance(seed: u64) -> Instance {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let days = rng.gen_range(2..5);
        let ppd = rng.gen_range(2..6);
        let nr = rng.gen_range(1..4);
        let nc = rng.gen_range(1..7);
        let courses = (0..nc)
            .map(|c| itc::Course {
                name: format!("c{c}"),
                teacher: format!("t{}", rng.gen_range(0..3)),
                lectures: rng.gen_range(1..4),
                min_working_days: rng.gen_range(1..4),
                students: rng.gen_range(5..60),
            })
            .collect();
        let rooms = (0..nr)
            .map(|r| (format!("r{r}"), rng.gen_range(10..50)))
            .collect();
        let curricula = (0..rng.gen_range(0..4))
            .map(|q| itc::Curriculum {
                name: format!("q{q}"),
                courses: (0..nc).filter(|_| rng.gen_bool(0.4)).collect(),
            })
            .collect();
        let unavailability = (0..rng.gen_range(0..4))
            .map(|_| {
                (
                    rng.gen_range(0..nc),
                    rng.gen_range(0..days),
                    rng.gen_range(0..ppd),
                )
            })
            .collect();
        Instance {
            name: "random".into(),
            days,
            periods_per_day: ppd,
            courses,
            rooms,
            curricula,
            unavailability,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(60))]
        #[test]
        fn incremental_cost_matches_scorer_on_random_instances(seed in 0u64..1_000_000) {
            let inst = random_instance(seed);
            let sol = feasible_start(&inst, seed);
            prop_assume!(sol.is_some());
            check_moves(&inst, &sol.unwrap(), seed, 2_000, false);
        }

        #[test]
        fn evaluated_moves_match_applied_moves_on_random_instances(seed in 0u64..1_000_000) {
            let inst = random_instance(seed);
            let sol = feasible_start(&inst, seed);
            prop_assume!(sol.is_some());
            let k = Compiled::new(&inst);
            // A single lecture has nothing to refuse or exchange.
            prop_assume!(k.n_lectures() > 2);
            check_deltas(&inst, &sol.unwrap(), seed, 2_000);
        }

        #[test]
        fn relaxed_incremental_cost_matches_recount_on_random_instances(seed in 0u64..1_000_000) {
            let inst = random_instance(seed);
            let sol = feasible_start(&inst, seed);
            prop_assume!(sol.is_some());
            check_moves(&inst, &sol.unwrap(), seed, 2_000, true);
        }
    }

    #[test]
    fn annealing_is_deterministic_per_seed() {
        let inst = itc::read_ctt(COMP01).unwrap();
        let opts = SolveOptions {
            seed: 9,
            max_iterations: Some(200_000),
            time_limit: std::time::Duration::from_secs(60),
            ..SolveOptions::default()
        };
        let a = solve(&inst, &opts, &|_| {}).unwrap();
        let b = solve(&inst, &opts, &|_| {}).unwrap();
        assert_eq!(a.solution, b.solution);
        assert_eq!(a.cost, b.cost);
        let lec = itc::lectures_from_solution(&inst, &a.solution);
        let s = itc::score(&inst, &lec);
        assert_eq!(
            (s.hard() as i64, s.soft() as i64),
            (a.cost.hard, a.cost.soft)
        );
    }
}
