//! `xiaotong solve` as a library: arguments and the command's body.

use crate::fet::{self, FetOptions};
use crate::itc;
use crate::problem::Relaxation;
use crate::solver::{self, Progress, SolveOptions};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Solve a timetable (FET `.fet` or ITC-2007 `.ctt`), or check a given solution.
#[derive(clap::Args, Debug, Clone)]
pub struct SolveArgs {
    /// Input file: a FET `.fet` file or an ITC-2007 track 3 `.ctt` file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Stop after this many seconds with the best timetable found.
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub time_limit: f64,
    /// Random seed; the same seed and iteration count give the same timetable.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Independent searches run in parallel (portfolio); the best wins.
    /// The first two are conflict-directed ejection and FET's recursive
    /// swapping, which solve different schools; then annealing, tabu search.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub threads: usize,
    /// Write the result: a FET file with times and rooms locked, or an ITC-2007 solution.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Score the solution given with --solution instead of solving.
    #[arg(long, requires = "solution")]
    pub check: bool,
    /// The solution to check: a FET file with locked activities, or an ITC-2007 `.sol` file.
    #[arg(long, value_name = "SOL")]
    pub solution: Option<PathBuf>,
    /// Skip FET constraint types the solver does not implement (they are listed).
    #[arg(long)]
    pub ignore_unsupported: bool,
    /// Stop as soon as a timetable without hard violations is found.
    #[arg(long)]
    pub stop_at_feasible: bool,
    /// Relaxation ladder step `SECONDS:WHAT` (WHAT = campus, features, capacity or a
    /// constraint name such as "max gaps per week"); repeatable, applied in order.
    #[arg(long = "relax", value_name = "S:WHAT")]
    pub relax: Vec<String>,
    /// With --stop-at-feasible: keep improving the soft cost this many seconds
    /// after the first feasible timetable.
    #[arg(long, value_name = "S")]
    pub polish: Option<f64>,
    /// Stop after this many search iterations (reproducible runs).
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u64>,
    /// FET files: once a feasible timetable is found, repair the soft
    /// constraints of at least this weight (percent) that it breaks, as hard
    /// ones (fet-cl nearly treats them so); 0 turns this off.
    #[arg(long, value_name = "PCT", default_value_t = 90)]
    pub strict_soft: u32,
    /// Share of the remaining time for that repair.
    #[arg(long, value_name = "F", default_value_t = 0.6)]
    pub strict_share: f64,
}

fn is_ctt(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("ctt"))
}

/// Run the command; returns the process exit code (0 solved or valid, 1 not).
pub fn run(args: SolveArgs, cancel: Arc<AtomicBool>) -> anyhow::Result<i32> {
    let mut out = std::io::stdout();
    run_to(args, cancel, &mut out)
}

/// Like [`run`], writing the report to `w`.
pub fn run_to(
    args: SolveArgs,
    cancel: Arc<AtomicBool>,
    w: &mut (dyn Write + Send),
) -> anyhow::Result<i32> {
    let started = Instant::now();
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let ctt = is_ctt(&args.file);
    let (model, inst) = if ctt {
        let inst = itc::read_ctt(&text).with_context(|| format!("{}", args.file.display()))?;
        (itc::to_model(&inst), Some(inst))
    } else {
        let opts = FetOptions {
            ignore_unsupported: args.ignore_unsupported,
        };
        let m = fet::read_str(&text, &opts).with_context(|| format!("{}", args.file.display()))?;
        (m, None)
    };
    writeln!(
        w,
        "read {}: {} activities, {} teachers, {} rooms, {} constraints",
        args.file.display(),
        model.activities.len(),
        model.teachers.len(),
        model.rooms.len(),
        model.constraints.len()
    )?;
    for (k, n) in &model.ignored {
        writeln!(w, "ignored unsupported constraint {k} ×{n}")?;
    }
    for line in model.min_days_warnings() {
        writeln!(w, "warning: {line}")?;
    }

    if args.check {
        let sol_path = args.solution.as_ref().context("--check needs --solution")?;
        let sol_text = std::fs::read_to_string(sol_path)
            .with_context(|| format!("reading {}", sol_path.display()))?;
        let (hard, soft) = if let Some(inst) = &inst {
            let lectures = itc::read_solution(inst, &sol_text)
                .with_context(|| format!("{}", sol_path.display()))?;
            let score = itc::score(inst, &lectures);
            writeln!(w, "{score}")?;
            (score.hard() as i64, score.soft() as i64)
        } else {
            let sol = fet::read_locked_solution(&sol_text, &model)
                .with_context(|| format!("{}", sol_path.display()))?;
            let (cost, expl) = solver::evaluate(&model, &sol)?;
            for line in expl {
                writeln!(w, "violation: {line}")?;
            }
            (cost.hard, cost.soft)
        };
        writeln!(
            w,
            "solved={} hard={hard} soft={soft} seconds={:.2}",
            (hard == 0) as i32,
            started.elapsed().as_secs_f64()
        )?;
        return Ok(if hard == 0 { 0 } else { 1 });
    }

    let mut relax = Vec::new();
    for r in &args.relax {
        let (t, what) = r
            .split_once(':')
            .with_context(|| format!("--relax {r}: expected SECONDS:WHAT"))?;
        let t: f64 = t
            .trim()
            .parse()
            .with_context(|| format!("--relax {r}: bad seconds"))?;
        let what: Relaxation = what.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        relax.push((t, what));
    }
    let opts = SolveOptions {
        time_limit: Duration::from_secs_f64(args.time_limit.max(0.0)),
        seed: args.seed,
        threads: args.threads.max(1),
        max_iterations: args.max_iterations,
        cancel,
        relax,
        stop_at_feasible: args.stop_at_feasible,
        polish: args.polish.map(|s| Duration::from_secs_f64(s.max(0.0))),
        initial: None,
        strict_soft: (!ctt && args.strict_soft > 0).then_some(args.strict_soft),
        strict_share: args.strict_share,
        stall: None,
    };
    let sink: Mutex<(&mut (dyn Write + Send), f64, bool)> = Mutex::new((w, -1.0, false));
    // Progress times count from the start of the command (reading included).
    let offset = started.elapsed().as_secs_f64();
    let on_progress = |p: &Progress| {
        let p = &Progress {
            seconds: p.seconds + offset,
            ..*p
        };
        let mut g = sink.lock().unwrap_or_else(|e| e.into_inner());
        let first_feasible = p.hard == 0 && !g.2;
        if first_feasible || p.seconds - g.1 >= 0.5 {
            g.1 = p.seconds;
            let _ = writeln!(
                g.0,
                "progress seconds={:.2} hard={} soft={} thread={}",
                p.seconds, p.hard, p.soft, p.thread
            );
        }
        if first_feasible {
            g.2 = true;
            let _ = writeln!(g.0, "feasible seconds={:.2}", p.seconds);
        }
    };
    let result = match &inst {
        Some(inst) => crate::ctt::solve(inst, &opts, &on_progress)?,
        None => solver::solve(&model, &opts, &on_progress)?,
    };
    let (w, _, _) = sink.into_inner().unwrap_or_else(|e| e.into_inner());
    let (mut hard, mut soft) = (result.cost.hard, result.cost.soft);
    if let Some(inst) = &inst {
        let lectures = itc::lectures_from_solution(inst, &result.solution);
        let score = itc::score(inst, &lectures);
        if result.cost.hard == 0 && (score.hard() as i64, score.soft() as i64) != (hard, soft) {
            writeln!(
                w,
                "warning: ITC scorer gives hard={} soft={}",
                score.hard(),
                score.soft()
            )?;
        }
        hard = score.hard() as i64;
        soft = score.soft() as i64;
        if let Some(path) = &args.out {
            std::fs::write(path, itc::write_solution(inst, &lectures))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    } else if let Some(path) = &args.out {
        let out = fet::write_locked(&text, &model, &result.solution)?;
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    writeln!(w, "iterations={}", result.iterations)?;
    for r in &result.relaxed {
        writeln!(w, "relaxed: {r}")?;
    }
    if hard > 0 {
        writeln!(
            w,
            "no timetable without hard violations was found; what blocks:"
        )?;
        for line in &result.explanation {
            writeln!(w, "  - {line}")?;
        }
    }
    writeln!(
        w,
        "solved={} hard={hard} soft={soft} seconds={:.2}",
        (hard == 0) as i32,
        started.elapsed().as_secs_f64()
    )?;
    Ok(if hard == 0 { 0 } else { 1 })
}
