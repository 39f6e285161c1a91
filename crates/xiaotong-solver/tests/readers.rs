use xiaotong_solver::fet::{self, FetOptions};
use xiaotong_solver::{ConstraintKind, Error, Weight};

mod common;
use common::{tiny_with, TINY};

#[test]
fn reads_tiny_fet() {
    let m = fet::read_str(TINY, &FetOptions::default()).unwrap();
    assert_eq!(m.days.len(), 2);
    assert_eq!(m.periods.len(), 3);
    assert_eq!(m.activities.len(), 4);
    assert_eq!(m.activities[2].duration, 2);
    // Y1 is made of its two groups.
    let y1 = m.students.iter().find(|s| s.name == "Y1").unwrap();
    assert_eq!(y1.atoms.len(), 2);
    assert_eq!(m.activities[3].n_students, 40);
    assert!(m
        .constraints
        .iter()
        .any(|c| c.weight == Weight::Soft(95)
            && matches!(c.kind, ConstraintKind::MinDaysBetween { .. })));
}

#[test]
fn reads_example_files() {
    for f in ["tests/data/small-school.fet", "tests/data/primaria.fet"] {
        let m = fet::read_file(std::path::Path::new(f), &FetOptions::default()).unwrap();
        assert!(!m.activities.is_empty(), "{f}");
    }
}

#[test]
fn unknown_teacher_is_named() {
    let bad = TINY.replace(
        "<Teacher>Jones</Teacher><Subject>Art",
        "<Teacher>Brown</Teacher><Subject>Art",
    );
    match fet::read_str(&bad, &FetOptions::default()) {
        Err(Error::Unknown {
            kind, name, line, ..
        }) => {
            assert_eq!(kind, "teacher");
            assert_eq!(name, "Brown");
            assert_eq!(line, 43);
        }
        other => panic!("unexpected {other:?}"),
    }
    let bad = TINY.replace("<Room>R1</Room>", "<Room>R9</Room>");
    let err = fet::read_str(&bad, &FetOptions::default()).unwrap_err();
    assert!(err.to_string().contains("unknown room \"R9\""), "{err}");
}

#[test]
fn malformed_xml_has_position() {
    let bad = TINY.replace(
        "<Subject><Name>Art</Name></Subject>",
        "<Subject><Name>Art</Nme></Subject>",
    );
    match fet::read_str(&bad, &FetOptions::default()) {
        Err(Error::Xml { line, column, .. }) => {
            assert_eq!(line, 17);
            assert!(column > 1);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unsupported_constraints_are_counted() {
    let extra = "<ConstraintTeacherIntervalMaxDaysPerWeek><Weight_Percentage>100</Weight_Percentage></ConstraintTeacherIntervalMaxDaysPerWeek>\n";
    let bad = tiny_with(&format!("{extra}{extra}"));
    let err = fet::read_str(&bad, &FetOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("ConstraintTeacherIntervalMaxDaysPerWeek ×2"),
        "{err}"
    );
    let m = fet::read_str(
        &bad,
        &FetOptions {
            ignore_unsupported: true,
        },
    )
    .unwrap();
    assert_eq!(
        m.ignored,
        vec![("ConstraintTeacherIntervalMaxDaysPerWeek".to_string(), 2)]
    );
}

/// An activity "consecutive" to itself can never be satisfied: the solver
/// refuses the file and names the activity instead of counting a violation
/// it cannot mend.
#[test]
fn activity_consecutive_to_itself_is_refused() {
    use xiaotong_solver::solver::{self, SolveOptions};
    let own = "<ConstraintTwoActivitiesConsecutive><Weight_Percentage>100</Weight_Percentage><First_Activity_Id>2</First_Activity_Id><Second_Activity_Id>2</Second_Activity_Id><Active>true</Active></ConstraintTwoActivitiesConsecutive>\n";
    let text = tiny_with(own);
    let m = fet::read_str(&text, &FetOptions::default()).unwrap();
    let err = solver::solve(&m, &SolveOptions::default(), &|_| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("names activity 2 as both first and second"),
        "{err}"
    );
}
