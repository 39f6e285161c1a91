//! Incremental evaluation of a timetable under a compiled [`Problem`].
//!
//! Placing or removing an activity updates occupancy counts and per
//! resource-day bit masks; only the constraint instances of the touched
//! resource-days and of the activity's groups are recomputed.

use crate::problem::*;

/// Per-day quantities of a resource constraint: (x, y), summed over the week.
#[inline]
pub fn day_value(
    kind: RKind,
    mask: u64,
    excused: u64,
    periods: usize,
    ends_at: Option<usize>,
) -> (i64, i64) {
    let pc = mask.count_ones() as usize;
    let day_mask: u64 = if periods >= 64 {
        u64::MAX
    } else {
        (1u64 << periods) - 1
    };
    match kind {
        RKind::MaxHours(max) => (pc.saturating_sub(max) as i64, 0),
        RKind::MinHours { min, allow_empty } => {
            if pc == 0 {
                (if allow_empty { 0 } else { min as i64 }, 0)
            } else {
                (min.saturating_sub(pc) as i64, 0)
            }
        }
        RKind::MaxGapsDay(max) => (gaps(mask, excused).saturating_sub(max) as i64, 0),
        RKind::MaxGapsWeek(_) => (0, gaps(mask, excused) as i64),
        RKind::MaxDays(_) => (0, (pc > 0) as i64),
        RKind::EarlyMax(_) => {
            if mask == 0 {
                return (0, 0);
            }
            let first = mask.trailing_zeros() as usize;
            let before = if first == 0 { 0 } else { (1u64 << first) - 1 };
            let late = (before & !excused & day_mask).count_ones() as i64;
            ((late - 1).max(0), (late == 1) as i64)
        }
        RKind::Compact => {
            let iso = mask & !(mask << 1) & !(mask >> 1);
            (iso.count_ones() as i64, 0)
        }
        RKind::EndsDay(_) => match ends_at {
            Some(end) if end < 64 => ((mask >> end).count_ones() as i64, 0),
            _ => (0, 0),
        },
        RKind::RealDays(_) | RKind::RealDayHours(_) | RKind::FullDays(_) => {
            real_day_value(kind, mask, 0)
        }
    }
}

/// Per-real-day quantities of a real-day constraint from the masks of the
/// morning (`m0`) and the afternoon (`m1`).
#[inline]
pub fn real_day_value(kind: RKind, m0: u64, m1: u64) -> (i64, i64) {
    match kind {
        RKind::RealDays(_) => (0, ((m0 | m1) != 0) as i64),
        RKind::FullDays(_) => (0, (m0 != 0 && m1 != 0) as i64),
        RKind::RealDayHours(max) => {
            let n = (m0.count_ones() + m1.count_ones()) as usize;
            (n.saturating_sub(max) as i64, 0)
        }
        _ => (0, 0),
    }
}

#[inline]
pub fn gaps(mask: u64, excused: u64) -> usize {
    if mask == 0 {
        return 0;
    }
    let first = mask.trailing_zeros();
    let last = 63 - mask.leading_zeros();
    let span = if last - first + 1 >= 64 {
        u64::MAX
    } else {
        ((1u64 << (last - first + 1)) - 1) << first
    };
    (span & !mask & !excused).count_ones() as usize
}

/// Violation units of a resource constraint from its weekly sums.
///
/// `free` is the number of periods of the resource's activities that are not
/// placed yet. A partial timetable's gaps, short days, late starts and
/// isolated lessons can still be filled by those periods, so they count only
/// beyond what `free` could fill (each period fills at most one unit); the
/// other kinds only grow as lessons are added and count as they are. With
/// everything placed (`free == 0`) this is the exact cost. Counting a
/// partial timetable's fillable gaps as violations would make the
/// construction and the ejection search shun every start that leaves a
/// temporary gap, which is what FET's generator avoids in the same way.
#[inline]
pub fn rc_cost(kind: RKind, sx: i64, sy: i64, free: i64) -> i64 {
    match kind {
        RKind::MaxGapsWeek(max) => (sy - max as i64 - free).max(0),
        RKind::MaxDays(max) | RKind::RealDays(max) | RKind::FullDays(max) => {
            (sy - max as i64).max(0)
        }
        RKind::EarlyMax(max) => (sx + (sy - max as i64).max(0) - free).max(0),
        RKind::MinHours { .. } | RKind::MaxGapsDay(_) | RKind::Compact => (sx - free).max(0),
        RKind::MaxHours(_) | RKind::EndsDay(_) | RKind::RealDayHours(_) => sx,
    }
}

/// Whether lessons starting at `sa` and `sb` are fewer than `min` (real)
/// days apart ("min days between activities").
#[inline]
pub fn min_days_broken(p: &Problem, sa: usize, sb: usize, min: usize) -> bool {
    let real_day = &p.slot_real_day;
    ((real_day[sa] as usize).abs_diff(real_day[sb] as usize)) < min
}

/// Whether lessons `sa..ea` and `sb..eb` share a real day without being
/// adjacent ("consecutive if same day"). Adjacent means within one (half)
/// day: in mornings-afternoons mode the end of a morning and the start of
/// the afternoon are not adjacent for FET.
#[inline]
pub fn same_day_apart(p: &Problem, sa: usize, ea: usize, sb: usize, eb: usize) -> bool {
    let (day, real_day) = (&p.slot_day, &p.slot_real_day);
    let adjacent = day[sa] == day[sb] && (ea == sb || eb == sa);
    real_day[sa] == real_day[sb] && !adjacent
}

/// The violation of a pairwise group constraint (`GKind::pairwise`) by
/// activities `a` at `sa` and `b` at `sb` (`a` first in the group's order).
#[inline]
pub fn pair_cost(p: &Problem, g: &GroupCon, a: usize, sa: u16, b: usize, sb: u16) -> i64 {
    let (sa, sb) = (sa as usize, sb as usize);
    let (ea, eb) = (sa + p.acts[a].dur, sb + p.acts[b].dur);
    let day = &p.slot_day;
    match g.kind {
        GKind::MinDays { min } => min_days_broken(p, sa, sb, min) as i64,
        GKind::SameDayConsecutive => same_day_apart(p, sa, ea, sb, eb) as i64,
        GKind::NotOverlapping => (ea.min(eb) as i64 - sa.max(sb) as i64).max(0),
        GKind::Consecutive => {
            let (first, second) = if g.acts[0] == a { (sa, sb) } else { (sb, sa) };
            let first_end = first + p.acts[g.acts[0]].dur;
            (day[first] != day[second] || p.past_breaks[first_end] as usize != second) as i64
        }
        _ => 0,
    }
}

/// What placing (or removing) activity `a` at `sa` adds to (or takes from)
/// the violation of a pairwise group: its pairs with the group's other
/// placed activities, once per time `a` is listed.
pub fn pair_delta(p: &Problem, g: &GroupCon, a: usize, sa: u16, start: &[u16]) -> i64 {
    let mut times = 0;
    let mut v = 0;
    for &b in &g.acts {
        if b == a {
            times += 1;
        } else if start[b] != NONE {
            v += pair_cost(p, g, a, sa, b, start[b]);
        }
    }
    v * times
}

/// Violation units of a group constraint.
pub fn group_cost(p: &Problem, g: &GroupCon, start: &[u16], room: &[u16]) -> i64 {
    let per = p.periods;
    let placed = || g.acts.iter().copied().filter(|&a| start[a] != NONE);
    match g.kind {
        GKind::MinDays { .. }
        | GKind::SameDayConsecutive
        | GKind::NotOverlapping
        | GKind::Consecutive => {
            let mut v = 0;
            for (i, &a) in g.acts.iter().enumerate() {
                if start[a] == NONE {
                    continue;
                }
                for &b in &g.acts[i + 1..] {
                    if start[b] != NONE && b != a {
                        v += pair_cost(p, g, a, start[a], b, start[b]);
                    }
                }
            }
            v
        }
        GKind::SameStart => {
            let mut it = placed();
            let Some(f) = it.next() else { return 0 };
            it.filter(|&a| start[a] != start[f]).count() as i64
        }
        GKind::MinWorkingDays { min } => {
            let mut days = 0u64;
            let mut many = std::collections::BTreeSet::new();
            for a in placed() {
                let d = start[a] as usize / per;
                if d < 64 {
                    days |= 1 << d;
                } else {
                    many.insert(d);
                }
            }
            let n = days.count_ones() as usize + many.len();
            min.saturating_sub(n) as i64
        }
        GKind::MaxPerDay { max } => {
            // Groups are a handful of lessons: count per day by pairs
            // rather than allocate a table on every move.
            let day = |a: usize| p.slot_real_day[start[a] as usize];
            let mut over = 0;
            for (i, a) in placed().enumerate() {
                let d = day(a);
                if placed().take(i).any(|b| day(b) == d) {
                    continue;
                }
                let n = placed().filter(|&b| day(b) == d).count();
                over += n.saturating_sub(max);
            }
            over as i64
        }
        GKind::RoomStability => {
            let mut rooms: Vec<u16> = placed().map(|a| room[a]).filter(|&r| r != NONE).collect();
            rooms.sort_unstable();
            rooms.dedup();
            rooms.len().saturating_sub(1) as i64
        }
    }
}

/// The cost of a timetable: hard violations and weighted soft cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cost {
    pub hard: i64,
    pub soft: i64,
}

#[derive(Clone)]
pub struct State<'p> {
    pub p: &'p Problem,
    pub start: Vec<u16>,
    pub room: Vec<u16>,
    res_occ: Vec<u16>,
    res_mask: Vec<u64>,
    /// Per resource and slot: the activity there when exactly one is and it
    /// is known, else `u32::MAX`.
    res_who: Vec<u32>,
    room_occ: Vec<u16>,
    /// Per slot: a bit set of the activities there (`act_words` words each).
    slot_acts: Vec<u64>,
    act_words: usize,
    rc_day: Vec<(i64, i64)>,
    rc_sum: Vec<(i64, i64)>,
    rc_val: Vec<i64>,
    /// Per resource: periods of its activities not placed yet.
    res_free: Vec<i64>,
    g_val: Vec<i64>,
    pub hard: i64,
    pub soft: i64,
    pub unplaced: usize,
    touched_rd: Vec<(u32, u32)>,
    rd_stamp: Vec<u32>,
    touched_g: Vec<u32>,
    g_stamp: Vec<u32>,
    stamp: u32,
}

impl<'p> State<'p> {
    /// An empty timetable (nothing placed).
    pub fn new(p: &'p Problem) -> Self {
        let mut room_occ = p.room_block.clone();
        room_occ.resize(p.n_rooms * p.slots, 0);
        let act_words = p.acts.len().div_ceil(64);
        let mut s = State {
            p,
            start: vec![NONE; p.acts.len()],
            room: vec![NONE; p.acts.len()],
            res_occ: vec![0; p.n_res * p.slots],
            res_mask: vec![0; p.n_res * p.days],
            res_who: vec![u32::MAX; p.n_res * p.slots],
            room_occ,
            slot_acts: vec![0; p.slots * act_words],
            act_words,
            rc_day: vec![(0, 0); p.rcons.len() * p.days],
            rc_sum: vec![(0, 0); p.rcons.len()],
            rc_val: vec![0; p.rcons.len()],
            res_free: res_periods(p, &vec![NONE; p.acts.len()]),
            g_val: vec![0; p.groups.len()],
            hard: 0,
            soft: 0,
            unplaced: p.acts.len(),
            touched_rd: Vec::new(),
            rd_stamp: vec![0; p.n_res * p.days],
            touched_g: Vec::new(),
            g_stamp: vec![0; p.groups.len()],
            stamp: 1,
        };
        // Constraints that cost something on an empty timetable (min hours without empty days).
        for r in 0..p.n_res {
            for d in 0..p.days {
                s.touched_rd.push((r as u32, d as u32));
            }
        }
        s.touched_g = (0..p.groups.len() as u32).collect();
        s.flush();
        s
    }

    pub fn cost(&self) -> Cost {
        Cost {
            hard: self.hard + self.unplaced as i64,
            soft: self.soft,
        }
    }

    fn add(&mut self, hard: bool, w: u32, delta: i64) {
        if hard {
            self.hard += delta;
        } else {
            self.soft += delta * w as i64;
        }
    }

    /// Place an unplaced activity at `start` (slot) in `room` (or NONE).
    pub fn place(&mut self, a: usize, start: u16, room: u16) {
        let p = self.p;
        let act = &p.acts[a];
        debug_assert_eq!(self.start[a], NONE);
        self.start[a] = start;
        self.room[a] = room;
        self.unplaced -= 1;
        let s0 = start as usize;
        if !act.allowed[s0] {
            self.hard += 1;
        }
        if let Some(&c) = act.start_cost.get(s0) {
            self.soft += c as i64;
        }
        let d = s0 / p.periods;
        let p0 = s0 % p.periods;
        for x in s0..s0 + act.dur {
            self.slot_acts[x * self.act_words + a / 64] |= 1 << (a % 64);
        }
        for &r in &act.res {
            self.res_free[r as usize] -= act.dur as i64;
            let base = r as usize * p.slots;
            for x in s0..s0 + act.dur {
                let o = &mut self.res_occ[base + x];
                *o += 1;
                if *o >= 2 {
                    self.hard += 1;
                    self.res_who[base + x] = u32::MAX;
                } else {
                    self.res_who[base + x] = a as u32;
                }
            }
            let bits = if act.dur >= 64 {
                u64::MAX
            } else {
                ((1u64 << act.dur) - 1) << p0
            };
            self.res_mask[r as usize * p.days + d] |= bits;
            self.touch_rd(r, d);
        }
        self.room_effect(a, 1);
        self.pair_groups(a, 1);
        self.touch_groups(a);
    }

    /// Remove a placed activity.
    pub fn unplace(&mut self, a: usize) {
        let p = self.p;
        let act = &p.acts[a];
        let s0 = self.start[a] as usize;
        debug_assert!(self.start[a] != NONE);
        if !act.allowed[s0] {
            self.hard -= 1;
        }
        if let Some(&c) = act.start_cost.get(s0) {
            self.soft -= c as i64;
        }
        let d = s0 / p.periods;
        let p0 = s0 % p.periods;
        for x in s0..s0 + act.dur {
            self.slot_acts[x * self.act_words + a / 64] &= !(1 << (a % 64));
        }
        for &r in &act.res {
            self.res_free[r as usize] += act.dur as i64;
            let base = r as usize * p.slots;
            let mut clear = 0u64;
            for x in s0..s0 + act.dur {
                let o = &mut self.res_occ[base + x];
                if *o >= 2 {
                    self.hard -= 1;
                }
                *o -= 1;
                // Who is left of several is not known.
                self.res_who[base + x] = u32::MAX;
                if *o == 0 {
                    clear |= 1 << (x - d * p.periods);
                }
            }
            let _ = p0;
            self.res_mask[r as usize * p.days + d] &= !clear;
            self.touch_rd(r, d);
        }
        self.room_effect(a, -1);
        self.pair_groups(a, -1);
        self.start[a] = NONE;
        self.room[a] = NONE;
        self.unplaced += 1;
        self.touch_groups(a);
    }

    fn room_effect(&mut self, a: usize, sign: i64) {
        let p = self.p;
        let act = &p.acts[a];
        let r = self.room[a];
        let s0 = self.start[a] as usize;
        if r == NONE {
            if act.needs_room {
                self.hard += sign;
            }
            return;
        }
        match act.rooms.iter().position(|&x| x == r) {
            Some(i) => self.soft += sign * act.room_cost[i] as i64,
            None => self.hard += sign,
        }
        let base = r as usize * p.slots;
        for x in s0..s0 + act.dur {
            self.soft += sign * p.room_soft[base + x] as i64;
            let o = &mut self.room_occ[base + x];
            if sign > 0 {
                *o += 1;
                if *o >= 2 {
                    self.hard += 1;
                }
            } else {
                if *o >= 2 {
                    self.hard -= 1;
                }
                *o -= 1;
            }
        }
    }

    fn touch_rd(&mut self, r: u32, d: usize) {
        let i = r as usize * self.p.days + d;
        if self.rd_stamp[i] != self.stamp {
            self.rd_stamp[i] = self.stamp;
            self.touched_rd.push((r, d as u32));
        }
    }

    /// Update the pairwise groups of activity `a` (placed at its start) for
    /// it being added (`sign` 1) or removed (-1).
    fn pair_groups(&mut self, a: usize, sign: i64) {
        let p = self.p;
        for &g in &p.act_groups[a] {
            let gc = &p.groups[g as usize];
            if gc.kind.pairwise() {
                let delta = sign * pair_delta(p, gc, a, self.start[a], &self.start);
                if delta != 0 {
                    self.g_val[g as usize] += delta;
                    self.add(gc.hard, gc.w, delta);
                }
            }
        }
    }

    fn touch_groups(&mut self, a: usize) {
        for &g in &self.p.act_groups[a] {
            if self.p.groups[g as usize].kind.pairwise() {
                continue;
            }
            if self.g_stamp[g as usize] != self.stamp {
                self.g_stamp[g as usize] = self.stamp;
                self.touched_g.push(g);
            }
        }
        // An activity that must end the students' day is evaluated on its
        // students' days, which place/unplace already touch.
    }

    /// Recompute the constraint instances touched since the last flush.
    pub fn flush(&mut self) {
        let p = self.p;
        let touched = std::mem::take(&mut self.touched_rd);
        for &(r, d) in &touched {
            let (r, d) = (r as usize, d as usize);
            let mask = self.res_mask[r * p.days + d];
            let exc = p.excused[r * p.days + d];
            for &ci in &p.res_rcons[r] {
                let ci = ci as usize;
                let rc = &p.rcons[ci];
                let (d, v) = if rc.kind.real_day() {
                    // Kept on the morning of the real day.
                    let de = d - d % 2;
                    let m0 = self.res_mask[r * p.days + de];
                    let m1 = if de + 1 < p.days {
                        self.res_mask[r * p.days + de + 1]
                    } else {
                        0
                    };
                    (de, real_day_value(rc.kind, m0, m1))
                } else {
                    let ends_at = match rc.kind {
                        RKind::EndsDay(a)
                            if self.start[a] != NONE && self.start[a] as usize / p.periods == d =>
                        {
                            Some(self.start[a] as usize % p.periods + p.acts[a].dur)
                        }
                        _ => None,
                    };
                    (d, day_value(rc.kind, mask, exc, p.periods, ends_at))
                };
                let old = self.rc_day[ci * p.days + d];
                if v != old {
                    self.rc_day[ci * p.days + d] = v;
                    let s = &mut self.rc_sum[ci];
                    s.0 += v.0 - old.0;
                    s.1 += v.1 - old.1;
                }
                // Recomputed even when the day's value is unchanged: the
                // resource's unplaced periods may have changed.
                let s = self.rc_sum[ci];
                let nv = rc_cost(rc.kind, s.0, s.1, self.res_free[r]);
                let delta = nv - self.rc_val[ci];
                if delta != 0 {
                    self.rc_val[ci] = nv;
                    self.add(rc.hard, rc.w, delta);
                }
            }
        }
        let mut touched = touched;
        touched.clear();
        self.touched_rd = touched;
        let tg = std::mem::take(&mut self.touched_g);
        for &g in &tg {
            let gc = &p.groups[g as usize];
            let v = group_cost(p, gc, &self.start, &self.room);
            let delta = v - self.g_val[g as usize];
            if delta != 0 {
                self.g_val[g as usize] = v;
                self.add(gc.hard, gc.w, delta);
            }
        }
        let mut tg = tg;
        tg.clear();
        self.touched_g = tg;
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.rd_stamp.iter_mut().for_each(|x| *x = 0);
            self.g_stamp.iter_mut().for_each(|x| *x = 0);
            self.stamp = 1;
        }
    }

    /// Move the given activities (removing all first, then placing all), flushing once.
    pub fn apply(&mut self, moves: &[(usize, u16, u16)]) {
        for &(a, _, _) in moves {
            if self.start[a] != NONE {
                self.unplace(a);
            }
        }
        for &(a, s, r) in moves {
            if s != NONE {
                self.place(a, s, r);
            }
        }
        self.flush();
    }

    /// Words of the activity bit sets ([`Self::slot_acts`]).
    pub fn act_words(&self) -> usize {
        self.act_words
    }

    /// The activities at `slot`, as a bit set over activity indices.
    pub fn slot_acts(&self, slot: usize) -> &[u64] {
        &self.slot_acts[slot * self.act_words..(slot + 1) * self.act_words]
    }

    /// Occupancy count of a room at a slot (including "not available" blocks).
    pub fn room_occ(&self, room: u16, slot: usize) -> u16 {
        self.room_occ[room as usize * self.p.slots + slot]
    }

    /// The periods of day `d` in which resource `r` is busy, as a bit mask.
    pub fn res_day_mask(&self, r: u32, d: usize) -> u64 {
        self.res_mask[r as usize * self.p.days + d]
    }

    /// The activity of resource `r` at `slot` when it is the only one there
    /// and known (None when unknown: look through the resource's activities).
    pub fn res_who(&self, r: u32, slot: usize) -> Option<usize> {
        let w = self.res_who[r as usize * self.p.slots + slot];
        (w != u32::MAX).then_some(w as usize)
    }

    pub fn res_occ(&self, r: u32, slot: usize) -> u16 {
        self.res_occ[r as usize * self.p.slots + slot]
    }

    pub fn rc_violation(&self, ci: usize) -> i64 {
        self.rc_val[ci]
    }

    pub fn group_violation(&self, g: usize) -> i64 {
        self.g_val[g]
    }

    /// Whether the activity takes part in a hard violation.
    pub fn in_hard_violation(&self, a: usize) -> bool {
        let p = self.p;
        let act = &p.acts[a];
        let s0 = self.start[a];
        if s0 == NONE {
            return true;
        }
        let s0 = s0 as usize;
        if !act.allowed[s0] {
            return true;
        }
        for &r in &act.res {
            for x in s0..s0 + act.dur {
                if self.res_occ[r as usize * p.slots + x] >= 2 {
                    return true;
                }
            }
            for &ci in &p.res_rcons[r as usize] {
                if p.rcons[ci as usize].hard && self.rc_val[ci as usize] > 0 {
                    return true;
                }
            }
        }
        let r = self.room[a];
        if r == NONE {
            if act.needs_room {
                return true;
            }
        } else {
            if !act.rooms.contains(&r) {
                return true;
            }
            for x in s0..s0 + act.dur {
                if self.room_occ[r as usize * p.slots + x] >= 2 {
                    return true;
                }
            }
        }
        p.act_groups[a]
            .iter()
            .any(|&g| p.groups[g as usize].hard && self.g_val[g as usize] > 0)
    }
}

/// Per resource: periods of its activities that `start` leaves unplaced.
pub fn res_periods(p: &Problem, start: &[u16]) -> Vec<i64> {
    let mut free = vec![0i64; p.n_res];
    for (a, act) in p.acts.iter().enumerate() {
        if start[a] == NONE {
            for &r in &act.res {
                free[r as usize] += act.dur as i64;
            }
        }
    }
    free
}

/// Evaluate a timetable from scratch, without any incremental bookkeeping.
pub fn full_cost(p: &Problem, start: &[u16], room: &[u16]) -> Cost {
    let free = res_periods(p, start);
    let mut hard = 0i64;
    let mut soft = 0i64;
    let mut res_occ = vec![0u32; p.n_res * p.slots];
    let mut room_occ: Vec<u32> = p.room_block.iter().map(|&x| x as u32).collect();
    room_occ.resize(p.n_rooms * p.slots, 0);
    for (a, act) in p.acts.iter().enumerate() {
        if start[a] == NONE {
            hard += 1;
            continue;
        }
        let s0 = start[a] as usize;
        if !act.allowed[s0] {
            hard += 1;
        }
        soft += act.start_cost.get(s0).copied().unwrap_or(0) as i64;
        for &r in &act.res {
            for x in s0..s0 + act.dur {
                res_occ[r as usize * p.slots + x] += 1;
            }
        }
        let r = room[a];
        if r == NONE {
            if act.needs_room {
                hard += 1;
            }
        } else {
            match act.rooms.iter().position(|&x| x == r) {
                Some(i) => soft += act.room_cost[i] as i64,
                None => hard += 1,
            }
            for x in s0..s0 + act.dur {
                room_occ[r as usize * p.slots + x] += 1;
                soft += p.room_soft[r as usize * p.slots + x] as i64;
            }
        }
    }
    hard += res_occ
        .iter()
        .map(|&o| o.saturating_sub(1) as i64)
        .sum::<i64>();
    hard += room_occ
        .iter()
        .map(|&o| o.saturating_sub(1) as i64)
        .sum::<i64>();
    for rc in &p.rcons {
        let r = rc.res as usize;
        let (mut sx, mut sy) = (0, 0);
        let masks: Vec<u64> = (0..p.days)
            .map(|d| {
                let mut mask = 0u64;
                for q in 0..p.periods {
                    if res_occ[r * p.slots + d * p.periods + q] > 0 {
                        mask |= 1 << q;
                    }
                }
                mask
            })
            .collect();
        for d in 0..p.days {
            let mask = masks[d];
            if rc.kind.real_day() {
                if d % 2 == 0 {
                    let m1 = masks.get(d + 1).copied().unwrap_or(0);
                    let (x, y) = real_day_value(rc.kind, mask, m1);
                    sx += x;
                    sy += y;
                }
                continue;
            }
            let ends_at = match rc.kind {
                RKind::EndsDay(a) if start[a] != NONE && start[a] as usize / p.periods == d => {
                    Some(start[a] as usize % p.periods + p.acts[a].dur)
                }
                _ => None,
            };
            let (x, y) = day_value(rc.kind, mask, p.excused[r * p.days + d], p.periods, ends_at);
            sx += x;
            sy += y;
        }
        let v = rc_cost(rc.kind, sx, sy, free[r]);
        if rc.hard {
            hard += v;
        } else {
            soft += v * rc.w as i64;
        }
    }
    for g in &p.groups {
        let v = group_cost(p, g, start, room);
        if g.hard {
            hard += v;
        } else {
            soft += v * g.w as i64;
        }
    }
    Cost { hard, soft }
}
