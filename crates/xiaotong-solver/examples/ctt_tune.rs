//! `ctt_tune FILE SECONDS SEED`: one single-thread ITC-2007 annealing run
//! with the schedule overridden by environment variables (T0, T1, CYCLES,
//! REHEAT, PMOVE, PKEMPE, PROOM, HW, WMIN, WMAX, WUP, SHARE, SCALE), the
//! threads by THREADS and a move budget by ITERS (reproducible, independent
//! of the machine's load); prints the final soft cost and its parts
//! (tuning aid).

use std::time::Duration;
use xiaotong_solver::ctt::{self, Schedule};
use xiaotong_solver::solver::SolveOptions;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("read file");
    let inst = xiaotong_solver::itc::read_ctt(&text).expect("parse");
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30.0);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let d = Schedule::default();
    let sc = Schedule {
        t0: env("T0", d.t0),
        t1: env("T1", d.t1),
        cycles: env("CYCLES", d.cycles),
        reheat: env("REHEAT", d.reheat),
        p_move: env("PMOVE", d.p_move),
        p_kempe: env("PKEMPE", d.p_kempe),
        p_room: env("PROOM", d.p_room),
        hard_weight: env("HW", d.hard_weight),
        weight_min: env("WMIN", d.weight_min),
        weight_max: env("WMAX", d.weight_max),
        weight_up: env("WUP", d.weight_up),
        share: env("SHARE", d.share),
        scale_ref: env("SCALE", d.scale_ref),
    };
    let opts = SolveOptions {
        time_limit: Duration::from_secs_f64(secs),
        seed,
        max_iterations: std::env::var("ITERS").ok().and_then(|v| v.parse().ok()),
        threads: env("THREADS", 1),
        ..SolveOptions::default()
    };
    let r = ctt::solve_with(&inst, &opts, sc, &|_| {}).expect("solve");
    let lec = xiaotong_solver::itc::lectures_from_solution(&inst, &r.solution);
    let s = xiaotong_solver::itc::score(&inst, &lec);
    println!(
        "{} hard={} soft={} score_soft={} iters={} cap={} mwd={} cc={} rs={} mps={:.2}",
        inst.name,
        r.cost.hard,
        r.cost.soft,
        s.soft(),
        r.iterations,
        s.room_capacity,
        s.min_working_days,
        s.curriculum_compactness,
        s.room_stability,
        r.iterations as f64 / r.seconds / 1e6
    );
}
