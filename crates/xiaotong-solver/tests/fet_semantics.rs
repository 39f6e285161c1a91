//! FET's meaning of constraints, as `fet-cl` checks a timetable we wrote.
//!
//! Each test pins a rule on which our model once disagreed with fet-cl (it
//! refused a timetable we scored as free of hard violations).

use xiaotong_solver::fet::{self, FetOptions};
use xiaotong_solver::solver;
use xiaotong_solver::{Model, Solution};

const TINY: &str = include_str!("data/tiny.fet");

fn read(text: &str) -> Model {
    fet::read_str(text, &FetOptions::default()).unwrap()
}

/// Score a timetable given as (activity id, day, hour, room) in model indices.
fn score(m: &Model, placed: &[(u64, usize, usize, Option<usize>)]) -> (i64, i64) {
    let mut sol = Solution::empty(m.activities.len());
    for &(id, d, h, r) in placed {
        let a = m.activities.iter().position(|a| a.id == id).unwrap();
        sol.start[a] = Some((d, h));
        sol.room[a] = r;
    }
    let (cost, _) = solver::evaluate(m, &sol).unwrap();
    (cost.hard, cost.soft)
}

// tiny.fet: activities 1 and 2 (Smith, Y1A, Math, split, min days 1 at 95 %
// with "consecutive if same day"), 3 (Smith, Y1B, 2 hours), 4 (Jones, Y1);
// Math must be in room R1 (0), activity 4 in R1 or Hall (1).
const SAME_DAY_APART: &[(u64, usize, usize, Option<usize>)] = &[
    (1, 0, 0, Some(0)),
    (2, 0, 2, Some(0)),
    (4, 0, 1, Some(1)),
    (3, 1, 0, Some(0)),
];
const SAME_DAY_ADJACENT: &[(u64, usize, usize, Option<usize>)] = &[
    (1, 0, 0, Some(0)),
    (2, 0, 1, Some(0)),
    (4, 0, 2, Some(1)),
    (3, 1, 0, Some(0)),
];

#[test]
fn consecutive_if_same_day_is_hard_whatever_the_weight() {
    let m = read(TINY);
    // Same day and adjacent: only the 95 % "min days" part is broken.
    assert_eq!(score(&m, SAME_DAY_ADJACENT), (0, 95));
    // Same day, not adjacent: fet-cl refuses this, whatever the weight.
    assert_eq!(score(&m, SAME_DAY_APART), (1, 95));
    // At 0 % the "min days" part is off, the adjacency part is not.
    let zero = TINY.replace(
        "<Weight_Percentage>95</Weight_Percentage><Consecutive_If_Same_Day>true",
        "<Weight_Percentage>0</Weight_Percentage><Consecutive_If_Same_Day>true",
    );
    assert_ne!(zero, TINY);
    let m = read(&zero);
    assert_eq!(score(&m, SAME_DAY_ADJACENT), (0, 0));
    assert_eq!(score(&m, SAME_DAY_APART), (1, 0));
    // Without the flag, nothing is hard.
    let plain = TINY.replace(
        "<Consecutive_If_Same_Day>true",
        "<Consecutive_If_Same_Day>false",
    );
    assert_eq!(score(&read(&plain), SAME_DAY_APART), (0, 95));
}
