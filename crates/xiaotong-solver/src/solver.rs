//! Construction by difficulty ordering, then a portfolio of searches on the
//! hard violations (conflict-directed ejection; FET's recursive swapping;
//! simulated annealing; tabu search), then late-acceptance hill climbing on
//! the soft cost.

use crate::model::{Constraint, ConstraintKind, Model, Solution, Weight};
use crate::problem::{GKind, Problem, RKind, Relaxation, NONE};
use crate::state::{min_days_broken, pair_cost, same_day_apart, Cost, State};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A list of (activity, start slot, room) assignments.
type Moves = Vec<(usize, u16, u16)>;

const HARD_WEIGHT: i64 = 1_000_000_000;
/// How long the recursive search may go without coming closer to a complete
/// timetable before it starts again, at least: it also waits as long as the
/// run took to get that close, so restarts grow rarer (runs on JMSS and
/// RehobothHSY2016T2d stall for 5–10 s and then finish).
const CHAIN_PATIENCE: Duration = Duration::from_secs(20);
/// Near the end (at most `CHAIN_NEAR_END` hard violations left) a run of the
/// recursive search that stalls this long starts again: CONCORDIA's runs
/// either finish within a second of getting there or stay stuck, while
/// StPaulsColY13T1a's and JMSS's long pauses come with hundreds left.
const CHAIN_END_PATIENCE: Duration = Duration::from_secs(5);
const CHAIN_NEAR_END: i64 = 8;
/// How long a run of the recursive search whose best is `low` hard
/// violations, reached after `took`, may go without coming closer.
fn chain_patience(low: i64, took: Duration) -> Duration {
    if low <= CHAIN_NEAR_END {
        CHAIN_END_PATIENCE
    } else {
        CHAIN_PATIENCE.max(took)
    }
}

/// Per mille probability of accepting a worsening move in the tabu search.
const TABU_NOISE: u32 = 30;
/// Cost of taking out a unit per earlier time it was taken out of the same
/// start (ejection search): below one hard violation, above any soft cost.
const EJECT_PENALTY: i64 = 1_000_000;

fn scalar(c: Cost) -> i64 {
    c.hard.saturating_mul(HARD_WEIGHT).saturating_add(c.soft)
}

/// Best-so-far report for progress displays.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub thread: usize,
    pub seconds: f64,
    pub hard: i64,
    pub soft: i64,
}

#[derive(Debug, Clone)]
pub struct SolveOptions {
    pub time_limit: Duration,
    pub seed: u64,
    /// Independent searches with seeds `seed`, `seed+1`, … (portfolio).
    pub threads: usize,
    /// Stop after this many search iterations per thread (for reproducible runs).
    pub max_iterations: Option<u64>,
    /// Set by the caller (e.g. on Ctrl-C) to stop with the best timetable so far.
    pub cancel: Arc<AtomicBool>,
    /// Relaxation ladder: after the given seconds without a feasible timetable,
    /// apply the relaxation (cumulatively).
    pub relax: Vec<(f64, Relaxation)>,
    /// Stop as soon as every hard constraint holds (after `polish`, if set).
    pub stop_at_feasible: bool,
    /// With `stop_at_feasible`: keep lowering the soft cost this long after the
    /// first feasible timetable.
    pub polish: Option<Duration>,
    /// Start from this timetable instead of constructing one.
    pub initial: Option<Solution>,
    /// Once a feasible timetable is found, repair the soft constraints of at
    /// least this weight that it breaks, treating them as hard (FET's
    /// generator rejects a placement that breaks a 95 % constraint 95 times
    /// in 100, so a timetable it confirms breaks very few of them), then
    /// polish keeping them if that succeeded.
    pub strict_soft: Option<u32>,
    /// Share of the remaining time for that repair (0..1); it also stops when
    /// it stalls for a tenth of the time limit (at least 2 s).
    pub strict_share: f64,
    /// Give up (each thread) when the best timetable has not improved for this long.
    pub stall: Option<Duration>,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            time_limit: Duration::from_secs(10),
            seed: 1,
            threads: 1,
            max_iterations: None,
            cancel: Arc::new(AtomicBool::new(false)),
            relax: Vec::new(),
            stop_at_feasible: false,
            polish: None,
            initial: None,
            strict_soft: None,
            strict_share: 0.6,
            stall: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SolveResult {
    pub solution: Solution,
    pub cost: Cost,
    pub seconds: f64,
    /// Seconds until the first timetable without hard violations, if any.
    pub first_feasible: Option<f64>,
    pub iterations: u64,
    pub relaxed: Vec<Relaxation>,
    /// When infeasible: what blocks, in words.
    pub explanation: Vec<String>,
}

impl SolveResult {
    pub fn feasible(&self) -> bool {
        self.cost.hard == 0
    }
}

/// Evaluate a given timetable of `model`.
pub fn evaluate(model: &Model, sol: &Solution) -> crate::Result<(Cost, Vec<String>)> {
    let p = Problem::compile(model, &[])?;
    let mut st = State::new(&p);
    load(&mut st, model, sol);
    let cost = st.cost();
    let expl = if cost.hard > 0 {
        explain(model, &st)
    } else {
        Vec::new()
    };
    Ok((cost, expl))
}

fn load(st: &mut State, model: &Model, sol: &Solution) {
    let per = model.periods.len();
    let mut moves = Vec::new();
    for a in 0..st.p.acts.len() {
        if let Some(Some((d, q))) = sol.start.get(a) {
            if *d < model.days.len() && *q + st.p.acts[a].dur <= per {
                let room = sol
                    .room
                    .get(a)
                    .copied()
                    .flatten()
                    .filter(|&r| r < model.rooms.len())
                    .map(|r| r as u16)
                    .unwrap_or(NONE);
                moves.push((a, (d * per + q) as u16, room));
            }
        }
    }
    st.apply(&moves);
}

fn to_solution(p: &Problem, start: &[u16], room: &[u16]) -> Solution {
    Solution {
        start: start
            .iter()
            .map(|&s| (s != NONE).then(|| (s as usize / p.periods, s as usize % p.periods)))
            .collect(),
        room: room
            .iter()
            .map(|&r| (r != NONE).then_some(r as usize))
            .collect(),
    }
}

struct Shared<'a> {
    started: Instant,
    deadline: Instant,
    cancel: &'a AtomicBool,
    done: AtomicBool,
    progress: &'a (dyn Fn(&Progress) + Sync),
    best: Mutex<Option<(Cost, f64)>>,
}

impl Shared<'_> {
    fn stop(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
            || self.done.load(Ordering::Relaxed)
            || Instant::now() >= self.deadline
    }
    fn report(&self, thread: usize, c: Cost) {
        let secs = self.started.elapsed().as_secs_f64();
        let mut b = self.best.lock().unwrap_or_else(|e| e.into_inner());
        if b.is_none_or(|(bc, _)| c < bc) {
            *b = Some((c, secs));
            drop(b);
            (self.progress)(&Progress {
                thread,
                seconds: secs,
                hard: c.hard,
                soft: c.soft,
            });
        }
    }
}

/// How much more a near-hard soft constraint (weight >= `strict_soft`) costs
/// than its weight while repairing and polishing: fet-cl confirms a timetable
/// only if it breaks very few of them, so they come before every other soft
/// constraint.
pub const NEAR_HARD_SCALE: u32 = 100;

/// The most activities that can be pairwise `min` (real) days apart in a
/// week of `days` (real) days.
fn max_spread(days: usize, min: usize) -> usize {
    days.saturating_sub(1)
        .checked_div(min)
        .map_or(usize::MAX, |n| n + 1)
}

/// A hard limit on how many lessons of a near-hard "min days between
/// activities" (one day apart, three lessons or more) share a day: two, or
/// as few as the week allows. fet-cl confirms a locked timetable only if its
/// lessons can be placed one by one each breaking such a constraint with at
/// most one placed lesson: it draws every break of a 95 % constraint anew
/// (5 % to pass) each time it places a lesson, so three lessons of a set on
/// one day (two draws at once for the last, 1 in 400) keep it from ever
/// confirming the timetable.
fn per_day_limit(c: &Constraint, real_days: usize) -> Option<Constraint> {
    match &c.kind {
        ConstraintKind::MinDaysBetween {
            activities,
            min_days: 1,
            ..
        } if activities.len() > 2 => Some(Constraint {
            weight: Weight::Hard,
            kind: ConstraintKind::MaxPerDay {
                activities: activities.clone(),
                max: activities.len().div_ceil(real_days.max(1)).max(2),
            },
        }),
        _ => None,
    }
}

/// The model with soft constraints of weight >= `min` made hard, except
/// those that no timetable can satisfy (a "min days between activities" with
/// more activities than the week has room for: FET's own timetables break
/// it once): these get [`NEAR_HARD_SCALE`] times their weight and a
/// [`per_day_limit`].
pub fn strict_model(model: &Model, min: u32) -> Option<Model> {
    let mut m = model.clone();
    let mut changed = false;
    let real_days = model.real_days();
    let mut limits = Vec::new();
    for c in &mut m.constraints {
        if let Weight::Soft(w) = c.weight {
            if w >= min {
                let impossible = matches!(
                    &c.kind,
                    ConstraintKind::MinDaysBetween { activities, min_days, .. }
                        if activities.len() > max_spread(real_days, *min_days)
                );
                c.weight = if impossible {
                    limits.extend(per_day_limit(c, real_days));
                    Weight::Soft(w.saturating_mul(NEAR_HARD_SCALE))
                } else {
                    Weight::Hard
                };
                changed = true;
            }
        }
    }
    m.constraints.extend(limits);
    changed.then_some(m)
}

/// The model with soft constraints of weight >= `min` costing
/// [`NEAR_HARD_SCALE`] times their weight, the "min days" ones with a
/// [`per_day_limit`] (what the polish keeps when the repair fails).
pub fn scaled_model(model: &Model, min: u32) -> Model {
    let mut m = model.clone();
    let real_days = model.real_days();
    let mut limits = Vec::new();
    for c in &mut m.constraints {
        if let Weight::Soft(w) = c.weight {
            if w >= min {
                limits.extend(per_day_limit(c, real_days));
                c.weight = Weight::Soft(w.saturating_mul(NEAR_HARD_SCALE));
            }
        }
    }
    m.constraints.extend(limits);
    m
}

/// Solve a model.
pub fn solve(
    model: &Model,
    opts: &SolveOptions,
    progress: &(dyn Fn(&Progress) + Sync),
) -> crate::Result<SolveResult> {
    let Some((min, strict)) = opts
        .strict_soft
        .filter(|&w| w > 0)
        .and_then(|w| strict_model(model, w).map(|m| (w, m)))
    else {
        return solve_plain(model, opts, progress);
    };
    let started = Instant::now();
    let threads = opts.threads.max(1) as u64;
    let stopped = |r: &SolveResult| {
        opts.cancel.load(Ordering::Relaxed)
            || opts
                .max_iterations
                .is_some_and(|m| r.iterations >= m * threads)
    };
    // 1. The real weights, up to the first feasible timetable.
    let o1 = SolveOptions {
        stop_at_feasible: true,
        polish: None,
        strict_soft: None,
        stall: None,
        ..opts.clone()
    };
    let first = solve_plain(model, &o1, progress)?;
    if first.cost.hard > 0
        || !first.relaxed.is_empty()
        || stopped(&first)
        || started.elapsed() >= opts.time_limit
    {
        return Ok(first);
    }
    let first_feasible = first.first_feasible;
    let mut iterations = first.iterations;
    let mut best = first.solution;
    let mut best_cost = first.cost;
    let stall = opts.time_limit.mul_f64(0.1).max(Duration::from_secs(2));
    // 2. Repair the broken near-hard constraints from there, with them as
    // hard; give up when that stalls.
    let scaled = scaled_model(model, min);
    let mut repaired = false;
    let (scost, _) = evaluate(&strict, &best)?;
    if scost.hard == 0 {
        repaired = true;
    } else {
        let remaining = opts.time_limit.saturating_sub(started.elapsed());
        let o2 = SolveOptions {
            time_limit: remaining.mul_f64(opts.strict_share.clamp(0.0, 1.0)),
            strict_soft: None,
            initial: Some(best.clone()),
            stop_at_feasible: true,
            polish: None,
            stall: Some(stall),
            ..opts.clone()
        };
        let second = solve_plain(&strict, &o2, &|_| {})?;
        iterations += second.iterations;
        if second.cost.hard == 0 {
            let (c, _) = evaluate(model, &second.solution)?;
            if c.hard == 0 {
                best = second.solution;
                best_cost = c;
                repaired = true;
            }
        }
    }
    // 3. Lower the soft cost from the best timetable: with the near-hard
    // constraints kept as hard when the repair worked, else weighted far
    // above the others (keeping whatever the polish gains on them), for the
    // polish time or until it stalls, or up to the time limit.
    let polish_model = if repaired { &strict } else { &scaled };
    let elapsed = started.elapsed();
    let remaining = opts.time_limit.saturating_sub(elapsed);
    let polish = !(opts.stop_at_feasible && opts.polish.is_none());
    if polish && !remaining.is_zero() && !opts.cancel.load(Ordering::Relaxed) {
        let (best_key, _) = evaluate(polish_model, &best)?;
        // Near-hard violations left: keep polishing while that pays.
        let near_hard_left = !repaired && best_key.soft >= (NEAR_HARD_SCALE * min) as i64;
        let o3 = SolveOptions {
            time_limit: remaining,
            strict_soft: None,
            initial: Some(best.clone()),
            stall: near_hard_left.then_some(stall),
            stop_at_feasible: opts.stop_at_feasible && !near_hard_left,
            ..opts.clone()
        };
        let offset = elapsed.as_secs_f64();
        let shifted = |p: &Progress| {
            progress(&Progress {
                seconds: p.seconds + offset,
                ..*p
            })
        };
        let third = solve_plain(polish_model, &o3, &shifted)?;
        iterations += third.iterations;
        let (c, _) = evaluate(model, &third.solution)?;
        let (key, _) = evaluate(polish_model, &third.solution)?;
        if c.hard == 0 && key < best_key {
            best = third.solution;
            best_cost = c;
        }
    }
    Ok(SolveResult {
        solution: best,
        cost: best_cost,
        seconds: started.elapsed().as_secs_f64(),
        first_feasible,
        iterations,
        relaxed: Vec::new(),
        explanation: Vec::new(),
    })
}

fn solve_plain(
    model: &Model,
    opts: &SolveOptions,
    progress: &(dyn Fn(&Progress) + Sync),
) -> crate::Result<SolveResult> {
    let started = Instant::now();
    let base = Problem::compile(model, &[])?;
    let shared = Shared {
        started,
        deadline: started + opts.time_limit,
        cancel: &opts.cancel,
        done: AtomicBool::new(false),
        progress,
        best: Mutex::new(None),
    };
    let threads = opts.threads.max(1);
    let results: Vec<crate::Result<WorkerResult>> = if threads == 1 {
        vec![worker(model, &base, opts, &shared, 0)]
    } else {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let (base, shared) = (&base, &shared);
                    s.spawn(move || worker(model, base, opts, shared, t))
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(crate::Error::Invalid("a solver thread panicked".into()))
                    })
                })
                .collect()
        })
    };
    let mut best: Option<WorkerResult> = None;
    let mut first_feasible: Option<f64> = None;
    let mut iterations = 0;
    for r in results {
        let r = r?;
        iterations += r.iterations;
        if let Some(f) = r.first_feasible {
            first_feasible = Some(first_feasible.map_or(f, |x: f64| x.min(f)));
        }
        if best
            .as_ref()
            .is_none_or(|b| (r.cost, r.relaxed.len()) < (b.cost, b.relaxed.len()))
        {
            best = Some(r);
        }
    }
    let best = best.ok_or_else(|| crate::Error::Invalid("no solver thread ran".into()))?;
    let mut explanation = Vec::new();
    if best.cost.hard > 0 {
        for b in &base.blockers {
            explanation.push(b.message.clone());
        }
        let p = Problem::compile(model, &best.relaxed)?;
        let mut st = State::new(&p);
        load(&mut st, model, &best.solution);
        for line in explain(model, &st) {
            if !explanation.contains(&line) {
                explanation.push(line);
            }
        }
    }
    Ok(SolveResult {
        solution: best.solution,
        cost: best.cost,
        seconds: started.elapsed().as_secs_f64(),
        first_feasible,
        iterations,
        relaxed: best.relaxed,
        explanation,
    })
}

struct WorkerResult {
    solution: Solution,
    cost: Cost,
    first_feasible: Option<f64>,
    iterations: u64,
    relaxed: Vec<Relaxation>,
}

fn worker(
    model: &Model,
    base: &Problem,
    opts: &SolveOptions,
    shared: &Shared,
    thread: usize,
) -> crate::Result<WorkerResult> {
    let mut rng = ChaCha8Rng::seed_from_u64(
        opts.seed
            .wrapping_add(thread as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let mut ladder = opts.relax.clone();
    ladder.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut relaxed: Vec<Relaxation> = Vec::new();
    let mut current: Option<Solution> = opts.initial.clone();
    let mut out = WorkerResult {
        solution: Solution::empty(model.activities.len()),
        cost: Cost {
            hard: i64::MAX,
            soft: i64::MAX,
        },
        first_feasible: None,
        iterations: 0,
        relaxed: Vec::new(),
    };
    let mut stage = 0;
    // Annealing solves some easy schools in a few milliseconds where the
    // ejection search needs seconds: the ejection thread anneals first for
    // a moment (5 % of the time, at most a quarter of a second).
    if thread % 4 == 0 && current.is_none() {
        let warm = opts
            .time_limit
            .mul_f64(0.05)
            .min(Duration::from_millis(250));
        let mut search = Search::new(base, &mut rng, thread, shared, opts);
        (search.anneal, search.eject, search.chain) = (true, false, false);
        search.construct();
        search.run(
            (shared.started + warm).min(shared.deadline),
            &mut out.iterations,
        );
        if search.best.hard == 0 {
            out.first_feasible = search.first_feasible;
            out.cost = search.best;
            out.solution = to_solution(base, &search.best_start, &search.best_room);
            current = Some(out.solution.clone());
        }
    }
    loop {
        let owned;
        let p: &Problem = if relaxed.is_empty() {
            base
        } else {
            owned = Problem::compile(model, &relaxed)?;
            &owned
        };
        let stage_end = ladder
            .get(stage)
            .map(|(t, _)| shared.started + Duration::from_secs_f64(t.max(0.0)))
            .unwrap_or(shared.deadline);
        let mut search = Search::new(p, &mut rng, thread, shared, opts);
        match &current {
            Some(sol) => {
                load(&mut search.st, model, sol);
                if search.chain {
                    search.eject_violating();
                }
            }
            None => search.construct(),
        }
        search.run(stage_end, &mut out.iterations);
        if let Some(f) = search.first_feasible {
            out.first_feasible.get_or_insert(f);
        }
        let sol = to_solution(p, &search.best_start, &search.best_room);
        if search.best < out.cost || !relaxed.is_empty() {
            out.cost = search.best;
            out.solution = sol.clone();
            out.relaxed = relaxed.clone();
        }
        current = Some(sol);
        if out.cost.hard == 0 || shared.stop() || stage >= ladder.len() {
            break;
        }
        if opts.max_iterations.is_some_and(|m| out.iterations >= m) {
            break;
        }
        relaxed.push(ladder[stage].1.clone());
        stage += 1;
    }
    Ok(out)
}

/// A placed lesson of another unit that shares a hard pairwise constraint
/// with lesson `a` of the unit whose starts are being compared.
struct PairPartner {
    a: u32,
    b: u32,
    unit: u32,
    group: u32,
    /// Where `b` starts and ends.
    start: u16,
    end: u16,
    check: PairCheck,
}

#[derive(Clone, Copy)]
enum PairCheck {
    MinDays(usize),
    SameDayConsecutive,
    Other,
}

struct Search<'p, 'r, 's> {
    p: &'p Problem,
    st: State<'p>,
    rng: &'r mut ChaCha8Rng,
    thread: usize,
    shared: &'s Shared<'s>,
    opts: &'s SolveOptions,
    tabu: Vec<u64>,
    best: Cost,
    best_start: Vec<u16>,
    best_room: Vec<u16>,
    first_feasible: Option<f64>,
    res_acts: Vec<Vec<usize>>,
    /// Per activity, the activities it shares a teacher or students with
    /// (`State::act_words` words each).
    clash_bits: Vec<u64>,
    /// Activities with more resources than this are checked for clashes
    /// by `clash_bits` (the words a slot's bit set has), others resource
    /// by resource.
    clash_bits_above: usize,
    moves: Vec<(usize, u16, u16)>,
    undo: Vec<(usize, u16, u16)>,
    /// Hard phase by simulated annealing instead of min-conflicts tabu search.
    anneal: bool,
    /// Hard phase by conflict-directed ejection (FET's and IFS's way): the
    /// timetable stays free of clashes, an unplaced unit goes to its best
    /// start and the units it clashes with are taken out.
    eject: bool,
    conflicts: Vec<usize>,
    /// Per unit: its place in the difficulty order of the recursive search
    /// (lower first); a unit that could not be placed moves before the
    /// units it took out.
    prio: Vec<i64>,
    /// Units moved in the current recursive search (not to be taken out again).
    in_chain: Vec<bool>,
    /// Hard phase by FET's recursive swapping first, conflict-directed
    /// ejection when that fails (thread mode of `eject`).
    chain: bool,
    /// Calls of the recursive search per unit placed.
    chain_budget: u32,
    /// Per unit: whether a start free of conflicts (`conflicts_at`) can
    /// still break a hard constraint (one on a resource, or a group
    /// constraint that is not pairwise).
    needs_check: Vec<bool>,
    /// End of the current run.
    until: Instant,
    chain_marked: Vec<usize>,
    /// Earlier positions of the activities the recursive search moved.
    log: Moves,
    /// The unit's own placement found by `conflicts_at`.
    placed: Moves,
    /// Buffer for the recursive search's moves.
    chain_moves: Moves,
    /// How often each unit was taken out of each start (unit × slot).
    ejected: Vec<u32>,
    temperature: f64,
    sa_since_improve: u64,
}

impl<'p, 'r, 's> Search<'p, 'r, 's> {
    fn new(
        p: &'p Problem,
        rng: &'r mut ChaCha8Rng,
        thread: usize,
        shared: &'s Shared<'s>,
        opts: &'s SolveOptions,
    ) -> Self {
        let mut res_acts = vec![Vec::new(); p.n_res];
        for (a, act) in p.acts.iter().enumerate() {
            for &r in &act.res {
                res_acts[r as usize].push(a);
            }
        }
        // Per activity: the activities sharing a resource with it, as a bit
        // set, so that the clash check of an activity with many resources
        // reads the few activities in a slot instead of every resource (a
        // year-wide lesson in StPaulsColY13T1a has 86 subgroups).
        let st = State::new(p);
        let words = st.act_words();
        let mut clash_bits = vec![0u64; p.acts.len() * words];
        for (a, act) in p.acts.iter().enumerate() {
            for &r in &act.res {
                for &b in &res_acts[r as usize] {
                    clash_bits[a * words + b / 64] |= 1 << (b % 64);
                }
            }
        }
        let chain = thread % 4 == 1;
        let mut prio = vec![0i64; p.units.len()];
        let order = if chain {
            fet_order(p, None)
        } else {
            difficulty_order(p, None)
        };
        rank(&mut prio, order);
        Search {
            p,
            st,
            rng,
            thread,
            shared,
            opts,
            tabu: vec![0; p.units.len() * p.slots],
            best: Cost {
                hard: i64::MAX,
                soft: i64::MAX,
            },
            best_start: vec![NONE; p.acts.len()],
            best_room: vec![NONE; p.acts.len()],
            first_feasible: None,
            res_acts,
            clash_bits,
            clash_bits_above: words,
            moves: Vec::new(),
            undo: Vec::new(),
            // Portfolio: threads cycle through tunings of the hard phase
            // (conflict-directed ejection, FET's recursive swapping with
            // ejection as its fallback, simulated annealing, min-conflicts
            // tabu search with soft tie-breaking). The first two solve
            // different files of FET's examples (docs/benchmarks.md).
            anneal: thread % 4 == 2,
            eject: thread % 4 <= 1,
            conflicts: Vec::new(),
            prio,
            in_chain: vec![false; p.units.len()],
            chain,
            // FET's limit of calls per activity placed.
            chain_budget: 1000,
            chain_marked: Vec::new(),
            needs_check: (0..p.units.len())
                .map(|u| {
                    p.units[u].iter().any(|&a| {
                        p.acts[a].needs_room && p.acts[a].rooms.is_empty()
                            || p.acts[a].res.iter().any(|&r| {
                                p.res_rcons[r as usize]
                                    .iter()
                                    .any(|&ci| p.rcons[ci as usize].hard)
                            })
                            || p.act_groups[a].iter().any(|&g| {
                                let gc = &p.groups[g as usize];
                                gc.hard && !(gc.kind.pairwise() || gc.kind == GKind::SameStart)
                            })
                    })
                })
                .collect(),
            until: Instant::now(),
            log: Vec::new(),
            placed: Vec::new(),
            chain_moves: Vec::new(),
            ejected: vec![0; p.units.len() * p.slots],
            temperature: 1.0,
            sa_since_improve: 0,
        }
    }

    /// Room for activity `a` starting at `s`: the candidate with the fewest
    /// clashes, then the lowest cost; `taken` are the placements already
    /// chosen in this move, whose rooms count as occupied.
    fn pick_room(&mut self, a: usize, s: u16, taken: &[(usize, u16, u16)]) -> u16 {
        let act = &self.p.acts[a];
        if act.rooms.is_empty() {
            return NONE;
        }
        let cur = self.st.room[a];
        let cur_start = self.st.start[a];
        let mut best = (i64::MAX, 0u32, NONE);
        let n = act.rooms.len();
        let off = self.rng.gen_range(0..n);
        // The current room first (keeps rooms stable), then the others from a random offset.
        let cur_i = act.rooms.iter().position(|&r| r == cur);
        for k in 0..=n {
            let i = match (k, cur_i) {
                (0, Some(c)) => c,
                (0, None) => continue,
                _ => (k - 1 + off) % n,
            };
            if k > 0 && Some(i) == cur_i {
                continue;
            }
            let r = act.rooms[i];
            let mut clash = 0i64;
            for x in s as usize..s as usize + act.dur {
                let mut o = self.st.room_occ(r, x) as i64;
                if r == cur
                    && cur_start != NONE
                    && (cur_start as usize..cur_start as usize + act.dur).contains(&x)
                {
                    o -= 1;
                }
                clash += o;
            }
            if taken.iter().any(|m| m.2 == r) {
                clash += 1;
            }
            let key = clash * 1_000_000 + act.room_cost[i] as i64;
            if key < best.0 {
                best = (key, 0, r);
                if key == 0 {
                    break;
                }
            }
        }
        best.2
    }

    fn unit_moves(&mut self, u: usize, s: u16) {
        let mut moves = std::mem::take(&mut self.moves);
        moves.clear();
        for &a in &self.p.units[u] {
            let r = self.pick_room(a, s, &moves);
            moves.push((a, s, r));
        }
        self.moves = moves;
    }

    /// Apply self.moves, returning the new cost; the previous positions go to self.undo.
    fn try_moves(&mut self) -> Cost {
        self.undo.clear();
        for &(a, _, _) in &self.moves {
            self.undo.push((a, self.st.start[a], self.st.room[a]));
        }
        self.st.apply(&self.moves);
        self.st.cost()
    }

    fn revert(&mut self) {
        let undo = std::mem::take(&mut self.undo);
        self.st.apply(&undo);
        self.undo = undo;
    }

    fn record(&mut self) {
        let c = self.st.cost();
        if c < self.best {
            self.best = c;
            self.best_start.copy_from_slice(&self.st.start);
            self.best_room.copy_from_slice(&self.st.room);
            if c.hard == 0 && self.first_feasible.is_none() {
                self.first_feasible = Some(self.shared.started.elapsed().as_secs_f64());
            }
            self.shared.report(self.thread, c);
        }
    }

    /// Place every unit, hardest first, at its cheapest start.
    fn construct(&mut self) {
        let p = self.p;
        if self.chain {
            // The recursive search places every unit itself, from nothing,
            // as FET does (a greedy start left it far more to undo).
            return;
        }
        let order = difficulty_order(p, Some(&mut *self.rng));
        for u in order {
            let starts = p.unit_starts[u].clone();
            let mut best: Option<(i64, Moves)> = None;
            let mut ties = 0u32;
            for &s in &starts {
                self.unit_moves(u, s);
                let c = scalar(self.try_moves());
                self.revert();
                self.keep_best(&mut best, &mut ties, c);
            }
            if let Some((_, mv)) = best {
                self.st.apply(&mv);
            }
        }
        if self.eject {
            self.eject_clashes();
        }
    }

    /// Take out units in hard violations until none is left, so that the
    /// recursive search starts from a timetable that breaks nothing.
    fn eject_violating(&mut self) {
        let p = self.p;
        for _ in 0..8 {
            if self.st.hard == 0 {
                return;
            }
            let mut order: Vec<usize> = (0..p.units.len()).collect();
            order.shuffle(self.rng);
            for u in order {
                if self.st.hard == 0 {
                    return;
                }
                let placed = self.st.start[p.units[u][0]] != NONE;
                if placed && p.units[u].iter().any(|&a| self.st.in_hard_violation(a)) {
                    self.take_out(u);
                }
            }
        }
    }

    /// Keep `self.moves` in `best` when its score `sc` is lower, or equal
    /// (then with probability 1 / (ties + 1), so every tie is as likely).
    fn keep_best(&mut self, best: &mut Option<(i64, Moves)>, ties: &mut u32, sc: i64) {
        match best {
            Some((b, _)) if sc > *b => {}
            Some((b, _)) if sc == *b => {
                *ties += 1;
                if self.rng.gen_range(0..=*ties) == 0 {
                    *best = Some((sc, self.moves.clone()));
                }
            }
            _ => {
                *ties = 0;
                *best = Some((sc, self.moves.clone()));
            }
        }
    }

    /// Unplace every activity of unit `u`.
    fn take_out(&mut self, u: usize) {
        let mut mv = std::mem::take(&mut self.moves);
        mv.clear();
        push_take_outs(self.p, &[u], &mut mv);
        self.st.apply(&mv);
        self.moves = mv;
    }

    /// Into `self.moves`: the units found by `conflicts_at` taken out, then
    /// the unit at its start (`self.placed`).
    fn conflict_moves(&mut self) {
        self.moves.clear();
        push_take_outs(self.p, &self.conflicts, &mut self.moves);
        self.moves.extend_from_slice(&self.placed);
    }

    /// Take out every unit that clashes with another (resource or room).
    fn eject_clashes(&mut self) {
        let p = self.p;
        for u in 0..p.units.len() {
            let clash = p.units[u].iter().any(|&a| {
                let s0 = self.st.start[a];
                if s0 == NONE {
                    return false;
                }
                let (s0, dur) = (s0 as usize, p.acts[a].dur);
                let r = self.st.room[a];
                p.acts[a]
                    .res
                    .iter()
                    .any(|&x| (s0..s0 + dur).any(|t| self.st.res_occ(x, t) >= 2))
                    || (r != NONE && (s0..s0 + dur).any(|t| self.st.room_occ(r, t) >= 2))
            });
            if clash {
                self.take_out(u);
            }
        }
    }

    /// Units to take out so that unit `u` can start at `s` without a teacher
    /// or students set working on more days than a hard "max days per week"
    /// allows: all of the resource's units on its least busy other day.
    fn max_days_conflicts(&mut self, u: usize, s: u16) {
        let p = self.p;
        let d = s as usize / p.periods;
        for &a in &p.units[u] {
            for &r in &p.acts[a].res {
                if self.st.res_day_mask(r, d) != 0 {
                    continue;
                }
                for &ci in &p.res_rcons[r as usize] {
                    let rc = &p.rcons[ci as usize];
                    let RKind::MaxDays(max) = rc.kind else {
                        continue;
                    };
                    if !rc.hard {
                        continue;
                    }
                    let used = (0..p.days)
                        .filter(|&e| self.st.res_day_mask(r, e) != 0)
                        .count();
                    if used < max {
                        continue;
                    }
                    // The used day with the fewest activities of r (not of u).
                    let mut best: Option<(usize, usize)> = None;
                    for e in (0..p.days).filter(|&e| e != d) {
                        if self.st.res_day_mask(r, e) == 0 {
                            continue;
                        }
                        let n = self.res_acts[r as usize]
                            .iter()
                            .filter(|&&b| {
                                let sb = self.st.start[b];
                                sb != NONE && sb as usize / p.periods == e && p.act_unit[b] != u
                            })
                            .count();
                        if best.is_none_or(|(_, m)| n < m) {
                            best = Some((e, n));
                        }
                    }
                    let Some((e, _)) = best else { continue };
                    for i in 0..self.res_acts[r as usize].len() {
                        let b = self.res_acts[r as usize][i];
                        let sb = self.st.start[b];
                        if sb != NONE && sb as usize / p.periods == e {
                            let v = p.act_unit[b];
                            if v != u && !self.conflicts.contains(&v) {
                                self.conflicts.push(v);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Units in room `r` while activity `a` of unit `u` would be there from `s`.
    fn room_conflicts(&mut self, u: usize, a: usize, s: u16, r: u16) {
        let p = self.p;
        let (s0, e0) = (s as usize, s as usize + p.acts[a].dur);
        if !(s0..e0).any(|x| self.st.room_occ(r, x) > 0) {
            return;
        }
        for b in 0..p.acts.len() {
            let sb = self.st.start[b];
            if self.st.room[b] != r || sb == NONE {
                continue;
            }
            let (sb, eb) = (sb as usize, sb as usize + p.acts[b].dur);
            let v = p.act_unit[b];
            if sb < e0 && s0 < eb && v != u && !self.conflicts.contains(&v) {
                self.conflicts.push(v);
            }
        }
    }

    /// The placed lessons of other units that share a hard pairwise
    /// constraint (min days, same day consecutive, not overlapping,
    /// consecutive) with a lesson of unit `u`: fixed while `u`'s starts
    /// are compared, so callers find them once for all starts.
    fn pair_partners(&self, u: usize) -> Vec<PairPartner> {
        let p = self.p;
        let mut out = Vec::new();
        for &a in &p.units[u] {
            for &g in &p.act_groups[a] {
                let gc = &p.groups[g as usize];
                if !gc.hard || !gc.kind.pairwise() {
                    continue;
                }
                for &b in &gc.acts {
                    let v = p.act_unit[b];
                    let sb = self.st.start[b];
                    if b != a && v != u && sb != NONE {
                        // The two most common kinds are decided inline from
                        // the other lesson's day and hours.
                        let check = match gc.kind {
                            GKind::MinDays { min } => PairCheck::MinDays(min),
                            GKind::SameDayConsecutive => PairCheck::SameDayConsecutive,
                            _ => PairCheck::Other,
                        };
                        out.push(PairPartner {
                            a: a as u32,
                            b: b as u32,
                            unit: v as u32,
                            group: g,
                            start: sb,
                            end: sb + p.acts[b].dur as u16,
                            check,
                        });
                    }
                }
            }
        }
        out
    }

    /// The units to take out so that unit `u` can start at `s` (into
    /// `self.conflicts`): those it would clash with (teachers, students,
    /// rooms), those it would break a hard pairwise constraint with (min
    /// days, same day consecutive, not overlapping, consecutive; from
    /// `partners`, [`Self::pair_partners`] of `u`), and those that make a
    /// hard "max days per week" full. The unit's own placement goes to
    /// `self.placed`.
    fn conflicts_at(&mut self, u: usize, s: u16, partners: &[PairPartner]) {
        let p = self.p;
        self.conflicts.clear();
        let words = self.st.act_words();
        for &a in &p.units[u] {
            let (sa, ea) = (s as usize, s as usize + p.acts[a].dur);
            if p.acts[a].res.len() > self.clash_bits_above {
                let clash = &self.clash_bits[a * words..(a + 1) * words];
                for x in sa..ea {
                    for (w, (&here, &with)) in self.st.slot_acts(x).iter().zip(clash).enumerate() {
                        let mut m = here & with;
                        while m != 0 {
                            let b = w * 64 + m.trailing_zeros() as usize;
                            m &= m - 1;
                            let v = p.act_unit[b];
                            if v != u && !self.conflicts.contains(&v) {
                                self.conflicts.push(v);
                            }
                        }
                    }
                }
                continue;
            }
            for &r in &p.acts[a].res {
                // The occupant index answers when one activity is there.
                let mut scan = false;
                for x in sa..ea {
                    if self.st.res_occ(r, x) == 0 {
                        continue;
                    }
                    match self.st.res_who(r, x) {
                        Some(b) => {
                            let v = p.act_unit[b];
                            if v != u && !self.conflicts.contains(&v) {
                                self.conflicts.push(v);
                            }
                        }
                        None => {
                            scan = true;
                            break;
                        }
                    }
                }
                if !scan {
                    continue;
                }
                for &b in &self.res_acts[r as usize] {
                    let sb = self.st.start[b];
                    if sb == NONE {
                        continue;
                    }
                    let (sb, eb) = (sb as usize, sb as usize + p.acts[b].dur);
                    if sb < ea && sa < eb {
                        let v = p.act_unit[b];
                        if v != u && !self.conflicts.contains(&v) {
                            self.conflicts.push(v);
                        }
                    }
                }
            }
        }
        // Units that break a hard pairwise constraint (min days, same
        // day consecutive, not overlapping, consecutive) with u at s.
        let sa = s as usize;
        for pp in partners {
            let v = pp.unit as usize;
            let (sb, eb) = (pp.start as usize, pp.end as usize);
            let breaks = match pp.check {
                PairCheck::MinDays(min) => min_days_broken(p, sa, sb, min),
                PairCheck::SameDayConsecutive => {
                    let ea = sa + p.acts[pp.a as usize].dur;
                    same_day_apart(p, sa, ea, sb, eb)
                }
                PairCheck::Other => {
                    let gc = &p.groups[pp.group as usize];
                    pair_cost(p, gc, pp.a as usize, s, pp.b as usize, pp.start) > 0
                }
            };
            if breaks && !self.conflicts.contains(&v) {
                self.conflicts.push(v);
            }
        }
        self.max_days_conflicts(u, s);
        let mut placed = std::mem::take(&mut self.placed);
        placed.clear();
        for i in 0..p.units[u].len() {
            let a = p.units[u][i];
            let r = self.pick_room(a, s, &placed);
            if r != NONE {
                self.room_conflicts(u, a, s, r);
            }
            placed.push((a, s, r));
        }
        self.placed = placed;
    }

    /// FET's recursive swapping: put unit `u` at a start where the units in
    /// its way can themselves be placed again, recursively (depth first,
    /// starts with fewer units in the way first), within `budget` calls.
    /// Starts that would add any other hard violation are not tried. On
    /// failure the timetable is as it was.
    fn chain_place(&mut self, u: usize, level: usize, budget: &mut u32) -> bool {
        const LEVEL_LIMIT: usize = 14;
        // From this depth on only the best start is tried (FET's rule).
        const FIRST_ONLY_LEVEL: usize = 5;
        if level > LEVEL_LIMIT || *budget == 0 {
            return false;
        }
        *budget -= 1;
        if *budget % 32 == 0 && (Instant::now() >= self.until || self.shared.stop()) {
            *budget = 0;
            return false;
        }
        let p = self.p;
        let base_hard = self.st.hard;
        // Candidates as (units in the way, random key, offset into the
        // flat buffers of placements and units in the way).
        let mut cands: Vec<(usize, u32, u32, u32)> = Vec::new();
        let mut cand_moves: Moves = Vec::new();
        let mut cand_units: Vec<usize> = Vec::new();
        let partners = self.pair_partners(u);
        for i in 0..p.unit_starts[u].len() {
            let s = p.unit_starts[u][i];
            self.conflicts_at(u, s, &partners);
            if self.conflicts.iter().any(|&v| self.in_chain[v]) {
                continue;
            }
            let key = self.rng.gen();
            cands.push((
                self.conflicts.len(),
                key,
                cand_moves.len() as u32,
                cand_units.len() as u32,
            ));
            cand_moves.extend_from_slice(&self.placed);
            cand_units.extend_from_slice(&self.conflicts);
        }
        cands.sort_unstable_by_key(|c| (c.0, c.1));
        let n_placed = p.units[u].len();
        for (n_confl, _, mi, ci) in cands {
            let placed = &cand_moves[mi as usize..mi as usize + n_placed];
            let confl = &cand_units[ci as usize..ci as usize + n_confl];
            let mut mv = std::mem::take(&mut self.chain_moves);
            mv.clear();
            push_take_outs(p, confl, &mut mv);
            mv.extend_from_slice(placed);
            // The conflicts cover clashes and pairwise constraints; other
            // hard constraints need the move tried. Only the starts the
            // search comes to are tried (the timetable is as it was for
            // each): below the first levels that is one, so this is the
            // larger part of the search's time when every start is tried.
            if self.needs_check[u] {
                let saved = std::mem::replace(&mut self.moves, mv);
                self.try_moves();
                let ok = self.st.hard <= base_hard;
                self.revert();
                mv = std::mem::replace(&mut self.moves, saved);
                if !ok {
                    self.chain_moves = mv;
                    continue;
                }
            }
            let mark = self.log.len();
            for &(a, _, _) in &mv {
                self.log.push((a, self.st.start[a], self.st.room[a]));
            }
            self.st.apply(&mv);
            self.chain_moves = mv;
            if confl.is_empty() {
                return true;
            }
            let marked = self.chain_marked.len();
            for &v in confl {
                self.in_chain[v] = true;
                self.chain_marked.push(v);
            }
            let mut order = confl.to_vec();
            order.sort_by_key(|&v| self.prio[v]);
            let mut ok = true;
            for v in order {
                if !self.chain_place(v, level + 1, budget) {
                    ok = false;
                    break;
                }
            }
            if ok {
                return true;
            }
            // Everything this attempt moved may move again (FET unmarks
            // every activity it restores).
            for v in self.chain_marked.drain(marked..) {
                self.in_chain[v] = false;
            }
            self.restore(mark);
            // Below the first levels only the best start is tried, as
            // FET does: the calls go to alternatives near the root.
            if *budget == 0 || level >= FIRST_ONLY_LEVEL {
                return false;
            }
        }
        false
    }

    /// Start the recursive search again from an empty timetable, with a new
    /// random order among equally difficult units and no memory of what was
    /// taken out where.
    fn chain_restart(&mut self) {
        let p = self.p;
        let mv: Moves = (0..p.acts.len()).map(|a| (a, NONE, NONE)).collect();
        self.st.apply(&mv);
        rank(&mut self.prio, fet_order(p, Some(&mut *self.rng)));
        self.ejected.iter_mut().for_each(|e| *e = 0);
        self.tabu.iter_mut().for_each(|t| *t = 0);
    }

    /// Put every activity the recursive search moved since `mark` back.
    fn restore(&mut self, mark: usize) {
        let mut tail: Vec<(usize, (usize, u16, u16))> =
            self.log.drain(mark..).enumerate().collect();
        // The oldest entry of each activity is where it was at `mark`.
        tail.sort_unstable_by_key(|&(i, (a, _, _))| (a, i));
        tail.dedup_by_key(|(_, (a, _, _))| *a);
        let back: Moves = tail.into_iter().map(|(_, m)| m).collect();
        self.st.apply(&back);
    }

    /// One step of conflict-directed ejection.
    fn eject_step(&mut self, iter: u64) {
        let p = self.p;
        let n_units = p.units.len();
        // The hardest unplaced unit for the recursive search; else an
        // unplaced unit, found by sampling, else by a scan.
        let mut u = usize::MAX;
        if self.chain {
            let mut best = i64::MAX;
            for v in 0..n_units {
                if self.st.start[p.units[v][0]] == NONE && self.prio[v] < best {
                    best = self.prio[v];
                    u = v;
                }
            }
            if u != usize::MAX {
                let mut budget = self.chain_budget;
                self.in_chain[u] = true;
                self.chain_marked.push(u);
                self.log.clear();
                let placed = self.chain_place(u, 0, &mut budget);
                for v in self.chain_marked.drain(..) {
                    self.in_chain[v] = false;
                }
                if placed {
                    return;
                }
            }
        }
        for _ in 0..20 {
            if u != usize::MAX {
                break;
            }
            let v = self.rng.gen_range(0..n_units);
            if self.st.start[p.units[v][0]] == NONE {
                u = v;
                break;
            }
        }
        if u == usize::MAX {
            let free: Vec<usize> = (0..n_units)
                .filter(|&v| self.st.start[p.units[v][0]] == NONE)
                .collect();
            if free.is_empty() {
                // Everything is placed but something is violated: take a
                // unit in a violation out, to be placed again.
                let v = self.pick_violating_unit();
                let old = self.st.start[p.units[v][0]];
                self.take_out(v);
                if old != NONE {
                    self.tabu[v * p.slots + old as usize] = iter + 10;
                }
                return;
            }
            u = free[self.rng.gen_range(0..free.len())];
        }
        let starts = &p.unit_starts[u];
        let n = starts.len();
        if n == 0 {
            return;
        }
        let sample = 64usize;
        let off = self.rng.gen_range(0..n);
        let step = if n > sample { n / sample } else { 1 };
        let best_hard = self.best.hard;
        let base_hard = self.st.hard;
        let mut chosen: Option<(i64, Moves)> = None;
        let mut ties = 0u32;
        // With the recursive search, first only the starts that break
        // nothing but take units out (the timetable stays free of hard
        // violations), as FET does; any start when there is none.
        let partners = self.pair_partners(u);
        for strict in [self.chain, false] {
            let mut k = 0;
            while k < n.min(sample * step) {
                let s = starts[(off + k) % n];
                k += step;
                self.conflicts_at(u, s, &partners);
                self.conflict_moves();
                // Prefer taking out units that were rarely taken out from there.
                let (mut penalty, mut least) = (0i64, i64::MAX);
                for &v in &self.conflicts {
                    let sv = self.st.start[p.units[v][0]] as usize;
                    let e = self.ejected[v * p.slots + sv] as i64;
                    penalty += e;
                    least = least.min(e);
                }
                // Without other hard constraints to break, a strict start
                // needs no trial.
                let (c, placed_hard) = if strict && !self.needs_check[u] {
                    (Cost::default(), base_hard)
                } else {
                    let c = self.try_moves();
                    let placed_hard = self.st.hard;
                    self.revert();
                    (c, placed_hard)
                };
                let sc = if strict {
                    if placed_hard > base_hard {
                        continue;
                    }
                    // FET's order: the least taken-out unit, then the
                    // total, then the number of units taken out.
                    (least.min(1 << 20) << 40)
                        .saturating_add(penalty.min(1 << 19) << 20)
                        .saturating_add(self.conflicts.len() as i64)
                } else {
                    let is_tabu = self.tabu[u * p.slots + s as usize] > iter;
                    if is_tabu && c.hard >= best_hard {
                        continue;
                    }
                    scalar(c).saturating_add(penalty.saturating_mul(EJECT_PENALTY))
                };
                self.keep_best(&mut chosen, &mut ties, sc);
            }
            if chosen.is_some() {
                break;
            }
        }
        let Some((_, mv)) = chosen else { return };
        // The unit goes before the units it takes out in the order of the
        // recursive search.
        let first_out = mv
            .iter()
            .filter(|m| m.1 == NONE)
            .map(|m| self.prio[p.act_unit[m.0]])
            .min();
        if let Some(f) = first_out {
            self.prio[u] = self.prio[u].min(f - 1);
        }
        // Ejected units may not go straight back.
        for &(b, s, _) in &mv {
            if s == NONE {
                let old = self.st.start[b];
                if old != NONE {
                    let v = p.act_unit[b];
                    self.tabu[v * p.slots + old as usize] =
                        iter + 10 + self.rng.gen_range(0..10u64);
                    let e = &mut self.ejected[v * p.slots + old as usize];
                    *e = e.saturating_add(1);
                }
            }
        }
        self.st.apply(&mv);
    }

    fn run(&mut self, until: Instant, iterations: &mut u64) {
        self.until = until;
        self.record();
        let p = self.p;
        let n_units = p.units.len();
        if n_units == 0 {
            return;
        }
        // Longer runs afford a longer late-acceptance history.
        let lahc_len =
            (self.opts.time_limit.as_secs_f64() * 200.0).clamp(1000.0, 100_000.0) as usize;
        let mut lahc: Vec<i64> = Vec::new();
        let mut since_best = 0u64;
        let mut last_best = self.best;
        let mut last_best_at = Instant::now();
        let mut iter: u64 = 0;
        let (mut chain_low, mut chain_low_at) = (i64::MAX, Instant::now());
        let mut chain_run_start = Instant::now();
        loop {
            if iter % 64 == 0 {
                let now = Instant::now();
                if self.shared.stop() || now >= until {
                    break;
                }
                if self.opts.stall.is_some_and(|d| now >= last_best_at + d) {
                    break;
                }
            }
            if self.opts.max_iterations.is_some_and(|m| *iterations >= m) {
                break;
            }
            if self.opts.stop_at_feasible && self.best.hard == 0 {
                let polished = match (self.opts.polish, self.first_feasible) {
                    (Some(d), Some(f)) => {
                        self.shared.started.elapsed().as_secs_f64() >= f + d.as_secs_f64()
                    }
                    _ => true,
                };
                if polished {
                    self.shared.done.store(true, Ordering::Relaxed);
                    break;
                }
            }
            if self.best == (Cost { hard: 0, soft: 0 }) {
                self.shared.done.store(true, Ordering::Relaxed);
                break;
            }
            iter += 1;
            *iterations += 1;
            if self.st.cost().hard > 0 {
                if self.eject {
                    self.eject_step(iter);
                } else if self.anneal {
                    self.sa_step();
                } else {
                    self.tabu_step(iter);
                }
                lahc.clear();
            } else {
                if lahc.is_empty() {
                    lahc = vec![scalar(self.st.cost()); lahc_len];
                }
                self.lahc_step(iter, &mut lahc);
            }
            self.record();
            if self.chain {
                // The recursive search restarts from nothing, in a new
                // random order, when it has not come closer for a while:
                // its runs either finish in seconds or stall.
                let hard = self.st.cost().hard;
                if hard < chain_low {
                    chain_low = hard;
                    chain_low_at = Instant::now();
                } else if hard > 0
                    && chain_low_at.elapsed()
                        >= chain_patience(chain_low, chain_low_at - chain_run_start)
                {
                    chain_run_start = Instant::now();
                    self.chain_restart();
                    chain_low = i64::MAX;
                    chain_low_at = Instant::now();
                }
            }
            if self.best < last_best {
                last_best = self.best;
                last_best_at = Instant::now();
                since_best = 0;
            } else {
                since_best += 1;
                let patience = if self.eject { 50 } else { 1 } * (4000 + 20 * n_units as u64);
                if self.st.cost().hard > 0 && since_best > patience {
                    // Restart from the best timetable with a random shake.
                    let (bs, br) = (self.best_start.clone(), self.best_room.clone());
                    self.moves.clear();
                    for a in 0..p.acts.len() {
                        self.moves.push((a, bs[a], br[a]));
                    }
                    let mv = std::mem::take(&mut self.moves);
                    self.st.apply(&mv);
                    self.moves = mv;
                    for _ in 0..(n_units / 20).max(3) {
                        let u = self.rng.gen_range(0..n_units);
                        if p.unit_starts[u].is_empty() {
                            continue;
                        }
                        let s = p.unit_starts[u][self.rng.gen_range(0..p.unit_starts[u].len())];
                        self.unit_moves(u, s);
                        let mv = std::mem::take(&mut self.moves);
                        self.st.apply(&mv);
                        self.moves = mv;
                    }
                    if self.chain {
                        self.eject_violating();
                    } else if self.eject {
                        self.eject_clashes();
                    }
                    since_best = 0;
                }
            }
        }
    }

    /// Moves that put single activity `a` at `s` and an activity of the same
    /// duration and resource that starts at `s` into `a`'s place.
    fn swap_moves(&mut self, a: usize, s: u16) -> bool {
        let p = self.p;
        let cur = self.st.start[a];
        if cur == NONE || cur == s || p.units[p.act_unit[a]].len() != 1 {
            return false;
        }
        let act = &p.acts[a];
        let mut other = None;
        'outer: for &r in &act.res {
            for &b in &self.res_acts[r as usize] {
                if b != a
                    && self.st.start[b] == s
                    && p.acts[b].dur == act.dur
                    && p.units[p.act_unit[b]].len() == 1
                    && p.acts[b].allowed[cur as usize]
                {
                    other = Some(b);
                    break 'outer;
                }
            }
        }
        let Some(b) = other else { return false };
        let (ra, rb) = (self.st.room[a], self.st.room[b]);
        let ra2 = if rb != NONE && act.rooms.contains(&rb) {
            rb
        } else {
            ra
        };
        let rb2 = if ra != NONE && p.acts[b].rooms.contains(&ra) {
            ra
        } else {
            rb
        };
        self.moves.clear();
        self.moves.push((a, s, ra2));
        self.moves.push((b, cur, rb2));
        true
    }

    /// Simulated annealing on the hard violations (soft cost as a small tie-breaker).
    fn sa_step(&mut self) {
        let p = self.p;
        let u = if self.rng.gen_range(0..100) < 80 {
            self.pick_violating_unit()
        } else {
            self.rng.gen_range(0..p.units.len())
        };
        let starts = &p.unit_starts[u];
        if starts.is_empty() {
            return;
        }
        let a0 = p.units[u][0];
        let s = starts[self.rng.gen_range(0..starts.len())];
        if self.rng.gen_range(0..100) < 30 {
            if !self.swap_moves(a0, s) {
                self.unit_moves(u, s);
            }
        } else {
            self.unit_moves(u, s);
        }
        let before = self.st.cost();
        let c = self.try_moves();
        let dh = (c.hard - before.hard) as f64 + (c.soft - before.soft) as f64 * 1e-4;
        let accept = dh <= 0.0 || self.rng.gen::<f64>() < (-dh / self.temperature).exp();
        if !accept {
            self.revert();
        }
        if c.hard < self.best.hard {
            self.sa_since_improve = 0;
        } else {
            self.sa_since_improve += 1;
        }
        self.temperature = (self.temperature * 0.99995).max(0.05);
        if self.sa_since_improve > 200_000 {
            self.temperature = 1.0;
            self.sa_since_improve = 0;
        }
    }

    fn pick_violating_unit(&mut self) -> usize {
        let n = self.p.acts.len();
        for _ in 0..40 {
            let a = self.rng.gen_range(0..n);
            if self.st.in_hard_violation(a) {
                return self.p.act_unit[a];
            }
        }
        // Violations are rare: scan everything.
        let violating: Vec<usize> = (0..n).filter(|&a| self.st.in_hard_violation(a)).collect();
        if violating.is_empty() {
            return self.rng.gen_range(0..self.p.units.len());
        }
        self.p.act_unit[violating[self.rng.gen_range(0..violating.len())]]
    }

    fn tabu_step(&mut self, iter: u64) {
        let p = self.p;
        // The soft cost breaks ties.
        let cur_cost = scalar(self.st.cost());
        let best_hard = self.best.hard;
        let sample = 48usize;
        let mut chosen: Option<(i64, Moves)> = None;
        let mut moved: Vec<(usize, u16)> = Vec::new();
        let mut ties = 0u32;
        for _ in 0..2 {
            let u = self.pick_violating_unit();
            let a0 = p.units[u][0];
            let cur = self.st.start[a0];
            moved.push((u, cur));
            let starts = &p.unit_starts[u];
            let n = starts.len();
            if n == 0 {
                continue;
            }
            let off = self.rng.gen_range(0..n);
            let step = if n > sample { n / sample } else { 1 };
            let mut k = 0;
            while k < n.min(sample * step) {
                let s = starts[(off + k) % n];
                k += step;
                if s == cur && p.acts[a0].rooms.is_empty() {
                    continue;
                }
                for variant in 0..2 {
                    if variant == 0 {
                        self.unit_moves(u, s);
                    } else if !self.swap_moves(a0, s) {
                        break;
                    }
                    let c = self.try_moves();
                    self.revert();
                    let sc = scalar(c);
                    let is_tabu = self.tabu[u * p.slots + s as usize] > iter;
                    if is_tabu && c.hard >= best_hard {
                        continue;
                    }
                    self.keep_best(&mut chosen, &mut ties, sc);
                }
            }
        }
        let Some((sc, mv)) = chosen else { return };
        if sc > cur_cost && self.rng.gen_range(0..1000) >= TABU_NOISE {
            return;
        }
        let units: Vec<usize> = mv.iter().map(|m| p.act_unit[m.0]).collect();
        self.st.apply(&mv);
        for (u, cur) in moved {
            if cur != NONE && units.contains(&u) {
                let tenure = 10 + self.rng.gen_range(0..10u64);
                self.tabu[u * p.slots + cur as usize] = iter + tenure;
            }
        }
    }

    fn lahc_step(&mut self, iter: u64, lahc: &mut [i64]) {
        let p = self.p;
        let cur = scalar(self.st.cost());
        let kind = self.rng.gen_range(0..100);
        self.moves.clear();
        if kind < 45 {
            let u = self.rng.gen_range(0..p.units.len());
            let starts = &p.unit_starts[u];
            if starts.is_empty() {
                return;
            }
            let s = starts[self.rng.gen_range(0..starts.len())];
            self.unit_moves(u, s);
        } else if kind < 55 {
            // Exchange the places (time and room) of two unrelated single activities.
            let a = self.rng.gen_range(0..p.acts.len());
            let b = self.rng.gen_range(0..p.acts.len());
            let (sa, sb) = (self.st.start[a], self.st.start[b]);
            if a == b
                || sa == NONE
                || sb == NONE
                || p.units[p.act_unit[a]].len() != 1
                || p.units[p.act_unit[b]].len() != 1
                || p.acts[a].dur != p.acts[b].dur
                || !p.acts[a].allowed[sb as usize]
                || !p.acts[b].allowed[sa as usize]
            {
                return;
            }
            let (ra, rb) = (self.st.room[a], self.st.room[b]);
            if (rb == NONE) != p.acts[a].rooms.is_empty()
                || (ra == NONE) != p.acts[b].rooms.is_empty()
            {
                return;
            }
            self.moves.push((a, sb, rb));
            self.moves.push((b, sa, ra));
        } else if kind < 80 {
            // Swap the times of two single activities sharing a resource.
            let a = self.rng.gen_range(0..p.acts.len());
            if p.units[p.act_unit[a]].len() != 1 || p.acts[a].res.is_empty() {
                return;
            }
            let r = p.acts[a].res[self.rng.gen_range(0..p.acts[a].res.len())] as usize;
            let list = &self.res_acts[r];
            let b = list[self.rng.gen_range(0..list.len())];
            if a == b || p.units[p.act_unit[b]].len() != 1 || p.acts[a].dur != p.acts[b].dur {
                return;
            }
            let (sa, sb) = (self.st.start[a], self.st.start[b]);
            if sa == NONE || sb == NONE || sa == sb {
                return;
            }
            let (ra, rb) = (self.st.room[a], self.st.room[b]);
            let ra2 = if rb != NONE && p.acts[a].rooms.contains(&rb) {
                rb
            } else {
                ra
            };
            let rb2 = if ra != NONE && p.acts[b].rooms.contains(&ra) {
                ra
            } else {
                rb
            };
            self.moves.push((a, sb, ra2));
            self.moves.push((b, sa, rb2));
        } else {
            let a = self.rng.gen_range(0..p.acts.len());
            let rooms = &p.acts[a].rooms;
            if rooms.len() < 2 || self.st.start[a] == NONE {
                return;
            }
            let r = rooms[self.rng.gen_range(0..rooms.len())];
            if r == self.st.room[a] {
                return;
            }
            // Move the activity to the room; swap with an occupant when there is one.
            let s = self.st.start[a];
            self.moves.push((a, s, r));
            if p.acts[a].dur == 1 {
                if let Some(&b) = self.occupant(r, s as usize) {
                    let ra = self.st.room[a];
                    if b != a && p.acts[b].rooms.contains(&ra) {
                        self.moves.push((b, self.st.start[b], ra));
                    }
                }
            }
        }
        if self.moves.is_empty() {
            return;
        }
        let c = self.try_moves();
        let v = scalar(c);
        let i = (iter as usize) % lahc.len();
        if c.hard == 0 && (v <= cur || v <= lahc[i]) {
            // accepted
        } else {
            self.revert();
        }
        let now = scalar(self.st.cost());
        if now < lahc[i] {
            lahc[i] = now;
        }
    }

    fn occupant(&self, room: u16, slot: usize) -> Option<&usize> {
        if self.st.room_occ(room, slot) == 0 {
            return None;
        }
        // Rooms are rarely shared by many activities; scan the placed ones.
        let st = &self.st;
        let p = self.p;
        self.res_acts.iter().flatten().find(|&&b| {
            st.room[b] == room
                && st.start[b] as usize <= slot
                && slot < st.start[b] as usize + p.acts[b].dur
        })
    }
}

/// The recursive search's priorities from an order, spaced so that a unit
/// can be moved before another (`prio - 1`) without renumbering.
fn rank(prio: &mut [i64], order: Vec<usize>) {
    for (i, u) in order.into_iter().enumerate() {
        prio[u] = i as i64 * 16;
    }
}

/// FET's order of the recursive search: most "incompatible" first, where a
/// unit's incompatibility is the duration of every other unit sharing a
/// teacher or students with it, plus the starts it may not take, times its
/// own duration (FET's `nIncompatible`).
fn fet_order(p: &Problem, rng: Option<&mut ChaCha8Rng>) -> Vec<usize> {
    let n_units = p.units.len();
    let mut res_units: Vec<Vec<usize>> = vec![Vec::new(); p.n_res];
    for (u, members) in p.units.iter().enumerate() {
        for &a in members {
            for &r in &p.acts[a].res {
                res_units[r as usize].push(u);
            }
        }
    }
    let unit_dur: Vec<usize> = p
        .units
        .iter()
        .map(|m| m.iter().map(|&a| p.acts[a].dur).max().unwrap_or(1))
        .collect();
    let mut seen = vec![usize::MAX; n_units];
    let mut incompatible = vec![0usize; n_units];
    for u in 0..n_units {
        seen[u] = u;
        let mut n = 0;
        for &a in &p.units[u] {
            for &r in &p.acts[a].res {
                for &v in &res_units[r as usize] {
                    if seen[v] != u {
                        seen[v] = u;
                        n += unit_dur[v];
                    }
                }
            }
        }
        n += p.slots.saturating_sub(p.unit_starts[u].len());
        incompatible[u] = n * unit_dur[u];
    }
    let mut order: Vec<usize> = (0..n_units).collect();
    if let Some(rng) = rng {
        order.shuffle(rng);
    }
    order.sort_by_key(|&u| std::cmp::Reverse(incompatible[u]));
    order
}

/// Units hardest first: fewer possible starts and rooms, then busier
/// resources, then longer; ties in random order when `rng` is given.
fn difficulty_order(p: &Problem, rng: Option<&mut ChaCha8Rng>) -> Vec<usize> {
    let mut load = vec![0usize; p.n_res];
    for act in &p.acts {
        for &r in &act.res {
            load[r as usize] += act.dur;
        }
    }
    let mut order: Vec<usize> = (0..p.units.len()).collect();
    if let Some(rng) = rng {
        order.shuffle(rng);
    }
    let key = |u: usize| {
        let members = &p.units[u];
        let l: usize = members
            .iter()
            .flat_map(|&a| p.acts[a].res.iter().map(|&r| load[r as usize]))
            .max()
            .unwrap_or(0);
        let dur: usize = members.iter().map(|&a| p.acts[a].dur).sum();
        let rooms = members
            .iter()
            .map(|&a| p.acts[a].rooms.len())
            .filter(|&n| n > 0)
            .min()
            .unwrap_or(usize::MAX);
        (
            p.unit_starts[u].len().min(rooms.saturating_mul(4)),
            usize::MAX - l,
            usize::MAX - dur,
        )
    };
    order.sort_by_key(|&u| key(u));
    order
}

/// Append the moves that unplace every activity of the given units.
fn push_take_outs(p: &Problem, units: &[usize], mv: &mut Moves) {
    for &v in units {
        mv.extend(p.units[v].iter().map(|&a| (a, NONE, NONE)));
    }
}

/// A teacher or a student set, as a timetabler names it.
fn resource_name(model: &Model, p: &Problem, r: usize) -> String {
    if r < p.n_teachers {
        format!("teacher {}", model.teachers[r].name)
    } else {
        format!("students {}", model.atoms[r - p.n_teachers])
    }
}

/// What keeps an unplaced activity out of each start its time constraints
/// allow, in the timetable as it stands: the teachers' and students' other
/// lessons, hard constraints with activities already placed, full rooms.
/// The reasons are counted by the starts they block, most first.
fn why_unplaced(model: &Model, st: &State, a: usize) -> String {
    let p = st.p;
    let act = &p.acts[a];
    let mut blocked: BTreeMap<String, usize> = BTreeMap::new();
    let mut clear = 0;
    for &s in &act.starts {
        let s = s as usize;
        let span = s..s + act.dur;
        let mut here = BTreeSet::new();
        for &r in &act.res {
            if span.clone().any(|x| st.res_occ(r, x) > 0) {
                here.insert(format!(
                    "{}'s other lessons",
                    resource_name(model, p, r as usize)
                ));
            }
        }
        for &g in &p.act_groups[a] {
            let gc = &p.groups[g as usize];
            if !gc.hard {
                continue;
            }
            for &b in &gc.acts {
                if b != a
                    && st.start[b] != NONE
                    && pair_cost(p, gc, a, s as u16, b, st.start[b]) > 0
                {
                    here.insert(format!(
                        "\"{}\" with {}",
                        model.constraints[gc.source].kind.name(),
                        model.activity_label(b)
                    ));
                }
            }
        }
        if act.needs_room
            && !act.rooms.is_empty()
            && act
                .rooms
                .iter()
                .all(|&r| span.clone().any(|x| st.room_occ(r, x) > 0))
        {
            here.insert("every room it may use taken".to_string());
        }
        if here.is_empty() {
            clear += 1;
        }
        for reason in here {
            *blocked.entry(reason).or_default() += 1;
        }
    }
    let mut reasons: Vec<(String, usize)> = blocked.into_iter().collect();
    reasons.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    let n = act.starts.len();
    let mut text =
        format!("{n} start(s) are left by its time constraints and its teachers' and students' availability");
    if n == 0 {
        return text;
    }
    let shown: Vec<String> = reasons
        .iter()
        .take(4)
        .map(|(reason, k)| format!("{reason} ({k})"))
        .collect();
    if !shown.is_empty() {
        text.push_str(&format!("; what blocks them: {}", shown.join(", ")));
    }
    if reasons.len() > 4 {
        text.push_str(&format!(" and {} more", reasons.len() - 4));
    }
    if clear > 0 {
        text.push_str(&format!(
            "; {clear} clash with nothing but would break another hard limit (hours per day, gaps, days per week)"
        ));
    }
    text
}

/// Describe the hard violations of a timetable in words.
pub fn explain(model: &Model, st: &State) -> Vec<String> {
    let p = st.p;
    let mut out = Vec::new();
    let label = |a: usize| model.activity_label(a);
    let slot_label = |s: usize| model.slot_label((s / p.periods, s % p.periods));
    let res_name = |r: usize| resource_name(model, p, r);
    for (a, act) in p.acts.iter().enumerate() {
        let s = st.start[a];
        if s == NONE {
            out.push(format!(
                "{} is not placed: {}",
                label(a),
                why_unplaced(model, st, a)
            ));
            continue;
        }
        if !act.allowed[s as usize] {
            out.push(format!(
                "{} is at {}, which its time constraints or the availability of its teachers/students forbid",
                label(a),
                slot_label(s as usize)
            ));
        }
        if st.room[a] == NONE && act.needs_room {
            out.push(format!("{} has no room", label(a)));
        }
    }
    let mut res_acts = vec![Vec::new(); p.n_res];
    for (a, act) in p.acts.iter().enumerate() {
        for &r in &act.res {
            res_acts[r as usize].push(a);
        }
    }
    for r in 0..p.n_res {
        for x in 0..p.slots {
            if st.res_occ(r as u32, x) >= 2 {
                let at: Vec<String> = res_acts[r]
                    .iter()
                    .filter(|&&a| {
                        st.start[a] != NONE
                            && (st.start[a] as usize..st.start[a] as usize + p.acts[a].dur)
                                .contains(&x)
                    })
                    .map(|&a| label(a))
                    .collect();
                out.push(format!(
                    "{} has {} activities at {}: {}",
                    res_name(r),
                    at.len(),
                    slot_label(x),
                    at.join(", ")
                ));
            }
        }
    }
    for room in 0..p.n_rooms {
        for x in 0..p.slots {
            if st.room_occ(room as u16, x) >= 2 {
                let name = &model.rooms[room].name;
                if p.room_block[room * p.slots + x] > 0 {
                    out.push(format!(
                        "room {name} is used at {} although it is not available",
                        slot_label(x)
                    ));
                } else {
                    out.push(format!("room {name} is double-booked at {}", slot_label(x)));
                }
            }
        }
    }
    for (ci, rc) in p.rcons.iter().enumerate() {
        if rc.hard && st.rc_violation(ci) > 0 {
            let c = &model.constraints[rc.source];
            out.push(format!(
                "{}: \"{}\" is violated ({} over the limit)",
                res_name(rc.res as usize),
                c.kind.name(),
                st.rc_violation(ci)
            ));
        }
    }
    for (g, gc) in p.groups.iter().enumerate() {
        if gc.hard && st.group_violation(g) > 0 {
            let names: Vec<String> = gc.acts.iter().take(6).map(|&a| label(a)).collect();
            out.push(format!(
                "\"{}\" is violated {} time(s) among {}",
                model.constraints[gc.source].kind.name(),
                st.group_violation(g),
                names.join(", ")
            ));
        }
    }
    if out.len() > 40 {
        let n = out.len() - 40;
        out.truncate(40);
        out.push(format!("… and {n} more"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fet::{self, FetOptions};
    use crate::state::full_cost;

    fn with_chain_search(file: &str, f: impl FnOnce(&mut Search)) {
        let m = fet::read_str(file, &FetOptions::default()).unwrap();
        let p = Problem::compile(&m, &[]).unwrap();
        let cancel = AtomicBool::new(false);
        let now = Instant::now();
        let shared = Shared {
            started: now,
            deadline: now + Duration::from_secs(600),
            cancel: &cancel,
            done: AtomicBool::new(false),
            progress: &|_| {},
            best: Mutex::new(None),
        };
        let opts = SolveOptions {
            max_iterations: Some(20_000),
            stop_at_feasible: true,
            polish: None,
            ..SolveOptions::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // Thread 1 of the portfolio runs the recursive search.
        let mut search = Search::new(&p, &mut rng, 1, &shared, &opts);
        assert!(search.chain);
        search.until = now + Duration::from_secs(600);
        f(&mut search);
    }

    /// The recursive search takes the units in FET's order: in tiny.fet
    /// with Jones away all Monday, the two-hour lesson 3 ((3 periods of
    /// lessons sharing Smith or Y1B + 2 starts it may not take) × 2 = 10)
    /// before Jones's lesson 4 (4 + 3 = 7), though lesson 4 has fewer
    /// starts left (3 against 4), before Smith's lessons 1 and 2 (4).
    #[test]
    fn recursive_search_takes_lessons_in_fets_order() {
        let monday = |h: u32| {
            format!("<Not_Available_Time><Day>Mon</Day><Hour>{h}</Hour></Not_Available_Time>")
        };
        let tiny = include_str!("../tests/data/tiny.fet").replace(
            &format!(
                "<Number_of_Not_Available_Times>1</Number_of_Not_Available_Times>{}",
                monday(1)
            ),
            &format!(
                "<Number_of_Not_Available_Times>3</Number_of_Not_Available_Times>{}{}{}",
                monday(1),
                monday(2),
                monday(3)
            ),
        );
        assert!(tiny.contains("<Hour>3</Hour></Not_Available_Time>"));
        with_chain_search(&tiny, |search| {
            let p = search.p;
            let ids = |order: Vec<usize>| -> Vec<u64> {
                order
                    .into_iter()
                    .map(|u| p.units[u][0] as u64 + 1)
                    .collect()
            };
            let fixed = ids(fet_order(p, None));
            assert_eq!(&fixed[..2], &[3, 4]);
            assert_eq!(&ids(difficulty_order(p, None))[..2], &[4, 3]);
            let mut by_prio: Vec<usize> = (0..p.units.len()).collect();
            by_prio.sort_by_key(|&u| search.prio[u]);
            assert_eq!(ids(by_prio), fixed);
            // A restart draws among equals only.
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            for _ in 0..8 {
                assert_eq!(&ids(fet_order(p, Some(&mut rng)))[..2], &[3, 4]);
            }
        });
    }

    /// Every unit of `p` at a random start of its own, or left out with
    /// probability 1 in `left_out` (as moves for `State::apply`).
    fn random_timetable(p: &Problem, rng: &mut ChaCha8Rng, left_out: u32) -> Moves {
        let mut mv: Moves = Vec::new();
        for u in 0..p.units.len() {
            let starts = &p.unit_starts[u];
            let s = if starts.is_empty() || rng.gen_range(0..left_out) == 0 {
                NONE
            } else {
                starts[rng.gen_range(0..starts.len())]
            };
            mv.extend(p.units[u].iter().map(|&a| (a, s, NONE)));
        }
        mv
    }

    /// The pairwise conflicts found from `pair_partners` (with "min days"
    /// and "consecutive if same day" decided inline) are those `pair_cost`
    /// finds, and whatever else is in the way clashes.
    #[test]
    fn pair_partners_find_what_pair_cost_finds() {
        // primaria.fet has "min days" with and without "consecutive if
        // same day"; half of its units are placed at random, and every
        // start of every third unit is compared with `pair_cost` over all
        // groups.
        let file = include_str!("../tests/data/primaria.fet");
        with_chain_search(file, |search| {
            let p = search.p;
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let mut compared = 0;
            for round in 0..20 {
                search.st.apply(&random_timetable(p, &mut rng, 2));
                for u in (round % 3..p.units.len()).step_by(3) {
                    let partners = search.pair_partners(u);
                    for &s in &p.unit_starts[u] {
                        let mut expected: Vec<usize> = Vec::new();
                        for &a in &p.units[u] {
                            for &g in &p.act_groups[a] {
                                let gc = &p.groups[g as usize];
                                for &b in gc.acts.iter().filter(|_| gc.hard) {
                                    let (sb, v) = (search.st.start[b], p.act_unit[b]);
                                    if b != a
                                        && v != u
                                        && sb != NONE
                                        && pair_cost(p, gc, a, s, b, sb) > 0
                                        && !expected.contains(&v)
                                    {
                                        expected.push(v);
                                    }
                                }
                            }
                        }
                        search.conflicts_at(u, s, &partners);
                        for v in &expected {
                            assert!(search.conflicts.contains(v), "unit {u} at {s}: {v} missed");
                        }
                        // What else is in the way must clash with u there.
                        for &v in search.conflicts.iter().filter(|v| !expected.contains(v)) {
                            let clash = p.units[u].iter().any(|&a| {
                                p.units[v].iter().any(|&b| {
                                    let sb = search.st.start[b] as usize;
                                    let (sa, ea) = (s as usize, s as usize + p.acts[a].dur);
                                    sb < ea
                                        && sa < sb + p.acts[b].dur
                                        && p.acts[a].res.iter().any(|r| p.acts[b].res.contains(r))
                                })
                            });
                            assert!(clash, "unit {u} at {s}: {v} is not in the way");
                        }
                        compared += expected.len();
                    }
                }
            }
            assert!(compared > 1000, "only {compared} pair conflicts compared");
        });
    }

    /// The clash check by activity bit sets finds the same units in the
    /// way as the check resource by resource, on timetables with clashes
    /// (several lessons of a class in one slot) and without.
    #[test]
    fn clash_bits_find_what_the_resource_scan_finds() {
        let file = include_str!("../tests/data/primaria.fet");
        with_chain_search(file, |search| {
            let p = search.p;
            let mut rng = ChaCha8Rng::seed_from_u64(12);
            let mut found = 0;
            for round in 0..20 {
                search.st.apply(&random_timetable(p, &mut rng, 3));
                for u in (round % 2..p.units.len()).step_by(2) {
                    let partners = search.pair_partners(u);
                    for &s in &p.unit_starts[u] {
                        let mut by = |above: usize| {
                            search.clash_bits_above = above;
                            search.conflicts_at(u, s, &partners);
                            let mut v = search.conflicts.clone();
                            v.sort_unstable();
                            v
                        };
                        let (scan, bits) = (by(usize::MAX), by(0));
                        assert_eq!(scan, bits, "unit {u} at {s}");
                        found += bits.len();
                    }
                }
            }
            assert!(found > 1000, "only {found} units in the way compared");
        });
    }

    /// A failed recursive search leaves the timetable exactly as it was; a
    /// successful one places the unit without adding a hard violation.
    #[test]
    fn recursive_search_places_or_restores() {
        let file = include_str!("../tests/data/primaria.fet");
        with_chain_search(file, |search| {
            let p = search.p;
            let (mut placed, mut failed) = (0, 0);
            for round in 0..400 {
                let free: Vec<usize> = (0..p.units.len())
                    .filter(|&v| search.st.start[p.units[v][0]] == NONE)
                    .collect();
                let Some(&u) = free.iter().min_by_key(|&&v| search.prio[v]) else {
                    // Everything placed: take a few units out again.
                    for v in (round % 7..p.units.len()).step_by(13) {
                        let mv: Moves = p.units[v].iter().map(|&a| (a, NONE, NONE)).collect();
                        search.st.apply(&mv);
                    }
                    continue;
                };
                let before = (search.st.start.clone(), search.st.room.clone());
                let (cost, base_hard) = (search.st.cost(), search.st.hard);
                // A small budget makes some searches fail.
                let mut budget = 3 + round as u32 % 20;
                search.in_chain[u] = true;
                search.chain_marked.push(u);
                search.log.clear();
                let ok = search.chain_place(u, 0, &mut budget);
                let held: Vec<usize> = (0..p.units.len()).filter(|&v| search.in_chain[v]).collect();
                for v in search.chain_marked.drain(..) {
                    search.in_chain[v] = false;
                }
                let st = &search.st;
                if ok {
                    assert!(held.iter().all(|&v| st.start[p.units[v][0]] != NONE));
                } else {
                    // A failed search holds nothing in place but the unit
                    // itself, as FET does: what an attempt moved and put
                    // back may move again in the next one.
                    assert_eq!(held, vec![u]);
                }
                assert_eq!(st.cost(), full_cost(p, &st.start, &st.room));
                if ok {
                    placed += 1;
                    assert!(st.start[p.units[u][0]] != NONE);
                    assert!(st.hard <= base_hard);
                    assert!(st.cost().hard < cost.hard);
                } else {
                    failed += 1;
                    assert_eq!((st.start.clone(), st.room.clone()), before);
                    assert_eq!(st.cost(), cost);
                }
            }
            assert!(
                placed > 100 && failed > 0,
                "placed {placed}, failed {failed}"
            );
        });
    }

    /// The recursive search alone builds a complete timetable of a real
    /// school (FET's Spanish primary school example) from nothing.
    #[test]
    fn recursive_search_solves_a_school() {
        let file = include_str!("../tests/data/primaria.fet");
        with_chain_search(file, |search| {
            let mut iterations = 0;
            search.run(Instant::now() + Duration::from_secs(600), &mut iterations);
            assert_eq!(search.best.hard, 0, "after {iterations} steps");
        });
    }
}
