use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use xiaotong_solver::fet::{self, FetOptions};
use xiaotong_solver::itc;
use xiaotong_solver::problem::{Problem, NONE};
use xiaotong_solver::solver::{self, SolveOptions};
use xiaotong_solver::state::{full_cost, State};
use xiaotong_solver::*;

mod common;
use common::{tiny_with, TINY};
const COMP01: &str = include_str!("data/comp01.ctt");

/// A random model that uses every constraint kind.
fn random_model(seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let days = rng.gen_range(2..5);
    let periods = rng.gen_range(3..7);
    let nt = rng.gen_range(1..5);
    let na = rng.gen_range(1..5);
    let nr = rng.gen_range(1..4);
    let mut m = Model {
        name: "random".into(),
        days: (0..days).map(|d| format!("d{d}")).collect(),
        periods: (0..periods).map(|p| format!("p{p}")).collect(),
        subjects: vec!["s0".into(), "s1".into()],
        teachers: (0..nt)
            .map(|t| Teacher {
                name: format!("t{t}"),
                qualified_subjects: vec![],
            })
            .collect(),
        atoms: (0..na).map(|a| format!("g{a}")).collect(),
        students: (0..na)
            .map(|a| StudentsSet {
                name: format!("g{a}"),
                size: 10 + a as u32 * 10,
                atoms: vec![a],
            })
            .collect(),
        rooms: (0..nr)
            .map(|r| Room {
                name: format!("r{r}"),
                capacity: 15 + 10 * r as u32,
                building: None,
                features: vec![],
            })
            .collect(),
        days_per_real_day: rng.gen_range(1..3),
        capacity: if rng.gen_bool(0.5) {
            CapacityRule::Soft(1)
        } else {
            CapacityRule::Hard
        },
        ..Model::default()
    };
    let n_acts = rng.gen_range(2..14);
    for i in 0..n_acts {
        let dur = rng.gen_range(1..=2.min(periods));
        m.activities.push(Activity {
            id: i as u64 + 1,
            duration: dur,
            teachers: vec![rng.gen_range(0..nt)],
            subject: Some(rng.gen_range(0..2)),
            students: vec![rng.gen_range(0..na)],
            n_students: rng.gen_range(5..40),
            needs_room: rng.gen_bool(0.5),
            ..Activity::default()
        });
    }
    let w = |rng: &mut ChaCha8Rng| {
        if rng.gen_bool(0.5) {
            Weight::Hard
        } else {
            Weight::Soft(rng.gen_range(1..100))
        }
    };
    let acts = |rng: &mut ChaCha8Rng, k: usize| -> Vec<usize> {
        (0..k).map(|_| rng.gen_range(0..n_acts)).collect()
    };
    let slots = |rng: &mut ChaCha8Rng| -> Vec<Slot> {
        (0..rng.gen_range(1..6))
            .map(|_| (rng.gen_range(0..days), rng.gen_range(0..periods)))
            .collect()
    };
    let who = |rng: &mut ChaCha8Rng| match rng.gen_range(0..4) {
        0 => Who::AllTeachers,
        1 => Who::Teacher(rng.gen_range(0..nt)),
        2 => Who::AllStudents,
        _ => Who::Students(rng.gen_range(0..na)),
    };
    use ConstraintKind as K;
    for _ in 0..rng.gen_range(5..25) {
        let kind = match rng.gen_range(0..27) {
            0 => K::BreakTimes(vec![(rng.gen_range(0..days), rng.gen_range(0..periods))]),
            1 => K::TeacherNotAvailable {
                teacher: rng.gen_range(0..nt),
                slots: slots(&mut rng),
            },
            2 => K::StudentsNotAvailable {
                students: rng.gen_range(0..na),
                slots: slots(&mut rng),
            },
            3 => K::RoomNotAvailable {
                room: rng.gen_range(0..nr),
                slots: slots(&mut rng),
            },
            4 => K::PreferredStartingTimes {
                activities: acts(&mut rng, 2),
                slots: slots(&mut rng),
            },
            5 => K::PreferredTimeSlots {
                activities: acts(&mut rng, 2),
                slots: slots(&mut rng),
            },
            6 => K::MinDaysBetween {
                activities: acts(&mut rng, 3),
                min_days: rng.gen_range(1..3),
                consecutive_if_same_day: rng.gen_bool(0.5),
            },
            7 => K::SameStartingTime {
                activities: acts(&mut rng, 2),
            },
            8 => K::NotOverlapping {
                activities: acts(&mut rng, 3),
            },
            9 => {
                // Two different activities (the same one twice is refused).
                let first = rng.gen_range(0..n_acts);
                let second = (first + rng.gen_range(1..n_acts)) % n_acts;
                K::TwoConsecutive { first, second }
            }
            10 => K::EndsStudentsDay {
                activity: rng.gen_range(0..n_acts),
            },
            11 => K::MaxHoursDaily {
                who: who(&mut rng),
                max: rng.gen_range(1..4),
            },
            12 => K::MinHoursDaily {
                who: who(&mut rng),
                min: rng.gen_range(1..4),
                allow_empty_days: rng.gen_bool(0.5),
            },
            13 => K::MaxGapsPerDay {
                who: who(&mut rng),
                max: rng.gen_range(0..2),
            },
            14 => K::MaxGapsPerWeek {
                who: who(&mut rng),
                max: rng.gen_range(0..3),
            },
            15 => K::MaxDaysPerWeek {
                who: who(&mut rng),
                max: rng.gen_range(1..3),
            },
            16 => K::EarlyMaxBeginningsAtSecondHour {
                who: who(&mut rng),
                max: rng.gen_range(0..2),
            },
            17 => K::PreferredRooms {
                activities: acts(&mut rng, 2),
                rooms: vec![rng.gen_range(0..nr)],
            },
            18 => K::TeacherHomeRoom {
                teacher: rng.gen_range(0..nt),
                room: rng.gen_range(0..nr),
            },
            19 => K::StudentsHomeRoom {
                students: rng.gen_range(0..na),
                room: rng.gen_range(0..nr),
            },
            20 => K::MinWorkingDays {
                activities: acts(&mut rng, 3),
                min: rng.gen_range(1..4),
            },
            21 => K::CurriculumCompactness {
                students: rng.gen_range(0..na),
            },
            22 => K::MaxRealDaysPerWeek {
                who: who(&mut rng),
                max: rng.gen_range(0..3),
            },
            23 => K::MaxHoursPerRealDay {
                who: who(&mut rng),
                max: rng.gen_range(1..5),
            },
            24 => K::MaxMorningAndAfternoonDays {
                who: who(&mut rng),
                max: rng.gen_range(0..2),
            },
            25 => K::MaxPerDay {
                activities: acts(&mut rng, 4),
                max: rng.gen_range(1..3),
            },
            _ => K::RoomStability {
                activities: acts(&mut rng, 3),
            },
        };
        // Hard same-start links are moved together by the solver, not by
        // arbitrary moves; keep them soft here so random moves can break them.
        let weight = if matches!(kind, K::SameStartingTime { .. }) {
            Weight::Soft(7)
        } else {
            w(&mut rng)
        };
        m.constraints.push(Constraint { weight, kind });
    }
    m
}

fn check_incremental(p: &Problem, seed: u64, steps: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut st = State::new(p);
    assert_eq!(st.cost(), full_cost(p, &st.start, &st.room));
    for _ in 0..steps {
        let k = rng.gen_range(1..4);
        let mut moves = Vec::new();
        for _ in 0..k {
            let a = rng.gen_range(0..p.acts.len());
            if moves.iter().any(|&(b, _, _)| b == a) {
                continue;
            }
            let act = &p.acts[a];
            if rng.gen_bool(0.1) {
                moves.push((a, NONE, NONE));
                continue;
            }
            let s = loop {
                let s = rng.gen_range(0..p.slots);
                if s % p.periods + act.dur <= p.periods {
                    break s as u16;
                }
            };
            let room = if p.n_rooms > 0 && rng.gen_bool(0.8) {
                rng.gen_range(0..p.n_rooms) as u16
            } else {
                NONE
            };
            moves.push((a, s, room));
        }
        st.apply(&moves);
        assert_eq!(
            st.cost(),
            full_cost(p, &st.start, &st.room),
            "after {moves:?}"
        );
        // The occupant index names only the one activity really there.
        for r in 0..p.n_res as u32 {
            for x in 0..p.slots {
                if let Some(b) = st.res_who(r, x) {
                    let sb = st.start[b] as usize;
                    assert!(st.start[b] != NONE && p.acts[b].res.contains(&r));
                    assert!((sb..sb + p.acts[b].dur).contains(&x));
                    assert_eq!(st.res_occ(r, x), 1);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn incremental_equals_full_recount(seed in any::<u64>()) {
        let m = random_model(seed);
        let p = Problem::compile(&m, &[]).unwrap();
        check_incremental(&p, seed ^ 0xabcdef, 60);
    }
}

#[test]
fn incremental_on_real_files() {
    let m = fet::read_str(TINY, &FetOptions::default()).unwrap();
    check_incremental(&Problem::compile(&m, &[]).unwrap(), 1, 500);
    let m = fet::read_file(
        std::path::Path::new("tests/data/primaria.fet"),
        &FetOptions::default(),
    )
    .unwrap();
    check_incremental(&Problem::compile(&m, &[]).unwrap(), 2, 300);
    let m = itc::to_model(&itc::read_ctt(COMP01).unwrap());
    check_incremental(&Problem::compile(&m, &[]).unwrap(), 3, 300);
}

fn opts(secs: f64, seed: u64) -> SolveOptions {
    SolveOptions {
        time_limit: Duration::from_secs_f64(secs),
        seed,
        ..SolveOptions::default()
    }
}

#[test]
fn tiny_reaches_its_optimum() {
    let m = fet::read_str(TINY, &FetOptions::default()).unwrap();
    let r = solver::solve(&m, &opts(5.0, 7), &|_| {}).unwrap();
    assert_eq!((r.cost.hard, r.cost.soft), (0, 0));
    // Activity 4 has 40 students: only the hall holds them.
    assert_eq!(r.solution.room[3], Some(1));
}

#[test]
fn deterministic_per_seed() {
    let m = itc::to_model(&itc::read_ctt(COMP01).unwrap());
    let mut o = opts(60.0, 11);
    o.max_iterations = Some(3000);
    let a = solver::solve(&m, &o, &|_| {}).unwrap();
    let b = solver::solve(&m, &o, &|_| {}).unwrap();
    assert_eq!(a.solution, b.solution);
    assert_eq!(a.cost, b.cost);
}

#[test]
fn itc_scorer_agrees_with_model_on_solver_output() {
    let inst = itc::read_ctt(COMP01).unwrap();
    let m = itc::to_model(&inst);
    for seed in 0..3 {
        let mut o = opts(30.0, seed);
        o.max_iterations = Some(2000 + 1000 * seed);
        let r = solver::solve(&m, &o, &|_| {}).unwrap();
        assert_eq!(r.cost.hard, 0);
        let lectures = itc::lectures_from_solution(&inst, &r.solution);
        let score = itc::score(&inst, &lectures);
        assert_eq!(score.hard(), 0);
        assert_eq!(score.soft() as i64, r.cost.soft, "seed {seed}");
        // Round trip through the solution format.
        let text = itc::write_solution(&inst, &lectures);
        assert_eq!(itc::read_solution(&inst, &text).unwrap(), lectures);
        assert_eq!(itc::solution_from_lectures(&inst, &lectures), r.solution);
    }
}

/// Exhaustive optimum of a tiny ITC instance, compared with the solver.
#[test]
fn small_itc_instance_reaches_brute_force_optimum() {
    let text = "Name: Brute\nCourses: 3\nRooms: 2\nDays: 2\nPeriods_per_day: 2\nCurricula: 1\nConstraints: 1\n\nCOURSES:\nA t1 2 2 30\nB t2 1 1 10\nC t1 1 1 25\n\nROOMS:\nbig 30\nsmall 12\n\nCURRICULA:\nq 2 A B\n\nUNAVAILABILITY_CONSTRAINTS:\nC 0 0\n\nEND.\n";
    let inst = itc::read_ctt(text).unwrap();
    let lectures: Vec<usize> = inst
        .courses
        .iter()
        .enumerate()
        .flat_map(|(c, k)| std::iter::repeat_n(c, k.lectures))
        .collect();
    let options = inst.days * inst.periods_per_day * inst.rooms.len();
    let mut best = usize::MAX;
    let mut idx = vec![0usize; lectures.len()];
    loop {
        let sol: Vec<itc::Lecture> = lectures
            .iter()
            .zip(&idx)
            .map(|(&c, &o)| {
                let r = o % inst.rooms.len();
                let slot = o / inst.rooms.len();
                (
                    c,
                    r,
                    slot / inst.periods_per_day,
                    slot % inst.periods_per_day,
                )
            })
            .collect();
        let s = itc::score(&inst, &sol);
        if s.hard() == 0 {
            best = best.min(s.soft());
        }
        let mut i = 0;
        loop {
            if i == idx.len() {
                break;
            }
            idx[i] += 1;
            if idx[i] < options {
                break;
            }
            idx[i] = 0;
            i += 1;
        }
        if i == idx.len() {
            break;
        }
    }
    let m = itc::to_model(&inst);
    let r = solver::solve(&m, &opts(3.0, 1), &|_| {}).unwrap();
    let score = itc::score(&inst, &itc::lectures_from_solution(&inst, &r.solution));
    assert_eq!(score.hard(), 0);
    assert_eq!(score.soft(), best, "brute-force optimum {best}");
}

#[test]
fn fet_writer_round_trip() {
    let m = fet::read_str(TINY, &FetOptions::default()).unwrap();
    let r = solver::solve(&m, &opts(3.0, 3), &|_| {}).unwrap();
    let written = fet::write_locked(TINY, &m, &r.solution).unwrap();
    let again = fet::read_str(&written, &FetOptions::default()).unwrap();
    assert_eq!(again.activities, m.activities);
    for c in &m.constraints {
        assert!(again.constraints.contains(c), "{c:?}");
    }
    let locked =
        r.solution.start.iter().flatten().count() + r.solution.room.iter().flatten().count();
    assert_eq!(again.constraints.len(), m.constraints.len() + locked);
    let sol = fet::read_locked_solution(&written, &m).unwrap();
    assert_eq!(sol, r.solution);
    let (cost, _) = solver::evaluate(&again, &sol).unwrap();
    assert_eq!(cost, r.cost);
}

#[test]
fn infeasible_is_explained() {
    // Smith teaches 4 periods; make him available for only 3.
    let na = "<ConstraintTeacherNotAvailableTimes><Weight_Percentage>100</Weight_Percentage><Teacher>Smith</Teacher><Number_of_Not_Available_Times>3</Number_of_Not_Available_Times><Not_Available_Time><Day>Tue</Day><Hour>1</Hour></Not_Available_Time><Not_Available_Time><Day>Tue</Day><Hour>2</Hour></Not_Available_Time><Not_Available_Time><Day>Tue</Day><Hour>3</Hour></Not_Available_Time><Active>true</Active></ConstraintTeacherNotAvailableTimes>\n";
    let text = tiny_with(na);
    let m = fet::read_str(&text, &FetOptions::default()).unwrap();
    let r = solver::solve(&m, &opts(1.0, 1), &|_| {}).unwrap();
    assert!(r.cost.hard > 0);
    assert!(
        r.explanation
            .iter()
            .any(|l| l.contains("teacher Smith is available 3 periods a week and teaches 4")),
        "{:?}",
        r.explanation
    );
    // The lesson left out is told why each of Smith's three free periods
    // is no good: his other lessons are there.
    assert!(
        r.explanation.iter().any(|l| l.contains("is not placed")
            && l.contains("3 start(s) are left")
            && l.contains("teacher Smith's other lessons (3)")),
        "{:?}",
        r.explanation
    );
}

#[test]
fn relaxation_ladder_relaxes_capacity() {
    // Activity 4 (40 students) may only use R1 (30 seats): infeasible until capacity is relaxed.
    let text = TINY.replace(
        "<Preferred_Room>Hall</Preferred_Room>",
        "<Preferred_Room>R1</Preferred_Room>",
    );
    let m = fet::read_str(&text, &FetOptions::default()).unwrap();
    let mut o = opts(3.0, 1);
    o.relax = vec![(0.2, problem::Relaxation::RoomCapacity)];
    let r = solver::solve(&m, &o, &|_| {}).unwrap();
    assert_eq!(r.cost.hard, 0);
    assert_eq!(r.relaxed, vec![problem::Relaxation::RoomCapacity]);
}

#[test]
fn cancellation_returns_best_so_far() {
    let m = itc::to_model(&itc::read_ctt(COMP01).unwrap());
    let mut o = opts(600.0, 1);
    o.cancel = Arc::new(AtomicBool::new(true));
    let r = solver::solve(&m, &o, &|_| {}).unwrap();
    assert!(r.seconds < 5.0);
    assert_eq!(r.solution.start.len(), m.activities.len());
}

#[test]
fn threads_portfolio() {
    let m = itc::to_model(&itc::read_ctt(COMP01).unwrap());
    let mut o = opts(1.0, 1);
    o.threads = 2;
    let r = solver::solve(&m, &o, &|_| {}).unwrap();
    assert_eq!(r.cost.hard, 0);
}

#[test]
fn cli_prints_final_line() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: cli::SolveArgs,
    }
    let dir = std::env::temp_dir().join(format!("xiaotong-solver-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("tiny-out.fet");
    let cli = Cli::parse_from([
        "solve",
        "tests/data/tiny.fet",
        "--time-limit",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut buf: Vec<u8> = Vec::new();
    let code = cli::run_to(cli.args, Arc::new(AtomicBool::new(false)), &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("solved=1 hard=0 soft=0 seconds="),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("solved=")).count(), 1);
    assert_eq!(code, 0);
    let check = Cli::parse_from([
        "solve",
        "tests/data/tiny.fet",
        "--check",
        "--solution",
        out.to_str().unwrap(),
    ]);
    let mut buf: Vec<u8> = Vec::new();
    assert_eq!(
        cli::run_to(check.args, Arc::new(AtomicBool::new(false)), &mut buf).unwrap(),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Students sets that overlap in random ways (a lesson's subgroups, some of
/// them covered by others), no teachers, no rooms, no other constraint:
/// a random timetable breaks a hard constraint exactly when some subgroup
/// has two lessons at once, whichever subgroups the search leaves out.
fn nested_students_model(seed: u64) -> (Model, Solution) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (days, periods, na) = (2, 3, rng.gen_range(2..9));
    let sets: Vec<StudentsSet> = (0..rng.gen_range(1..9))
        .map(|i| {
            let mut atoms: Vec<usize> = (0..na).filter(|_| rng.gen_bool(0.3)).collect();
            if atoms.is_empty() {
                atoms.push(rng.gen_range(0..na));
            }
            StudentsSet {
                name: format!("s{i}"),
                size: 10,
                atoms,
            }
        })
        .collect();
    let mut m = Model {
        name: "nested".into(),
        days: (0..days).map(|d| format!("d{d}")).collect(),
        periods: (0..periods).map(|p| format!("p{p}")).collect(),
        atoms: (0..na).map(|a| format!("g{a}")).collect(),
        students: sets,
        ..Model::default()
    };
    let mut sol = Solution::empty(0);
    for i in 0..rng.gen_range(1..14) {
        let duration = rng.gen_range(1..3);
        m.activities.push(Activity {
            id: i + 1,
            duration,
            students: vec![rng.gen_range(0..m.students.len())],
            ..Activity::default()
        });
        let start = (
            rng.gen_range(0..days),
            rng.gen_range(0..=periods - duration),
        );
        sol.start.push(Some(start));
        sol.room.push(None);
    }
    (m, sol)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn a_clash_of_any_subgroup_is_hard(seed in any::<u64>()) {
        let (m, sol) = nested_students_model(seed);
        let busy = |atom: usize, a: usize, d: usize, p: usize| {
            let act = &m.activities[a];
            let (sd, sp) = sol.start[a].unwrap();
            m.students[act.students[0]].atoms.contains(&atom)
                && sd == d
                && (sp..sp + act.duration).contains(&p)
        };
        let clash = (0..m.atoms.len()).any(|g| {
            (0..m.days.len()).any(|d| {
                (0..m.periods.len()).any(|p| {
                    (0..m.activities.len()).filter(|&a| busy(g, a, d, p)).count() > 1
                })
            })
        });
        let (cost, _) = solver::evaluate(&m, &sol).unwrap();
        prop_assert_eq!(cost.hard > 0, clash);
    }
}
