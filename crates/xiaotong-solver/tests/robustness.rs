//! Readers never panic: random and mutated inputs (a stand-in for the cargo-fuzz
//! targets in fuzz/, which need a nightly toolchain).

use proptest::prelude::*;
use xiaotong_solver::fet::{self, FetOptions};
use xiaotong_solver::itc;
use xiaotong_solver::problem::Problem;
use xiaotong_solver::state::State;

const TINY: &str = include_str!("data/tiny.fet");
const COMP01: &str = include_str!("data/comp01.ctt");

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
    Truncate(usize),
    Replace(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let pieces = prop_oneof![
        Just("<".to_string()),
        Just(">".to_string()),
        Just("</".to_string()),
        Just("&amp;".to_string()),
        Just("&#0;".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999".to_string()),
        Just("<Activity_Id>77</Activity_Id>".to_string()),
        Just("<Duration>0</Duration>".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("0".to_string()),
        "[ -~]{0,12}",
    ];
    prop_oneof![
        (any::<usize>(), 0usize..200).prop_map(|(a, b)| Edit::Delete(a, b)),
        (any::<usize>(), pieces.clone()).prop_map(|(a, s)| Edit::Insert(a, s)),
        (any::<usize>(), 0usize..300).prop_map(|(a, b)| Edit::Duplicate(a, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), pieces).prop_map(|(a, s)| Edit::Replace(a, s)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut b = text.as_bytes().to_vec();
    for e in edits {
        let n = b.len().max(1);
        match e {
            Edit::Delete(a, len) => {
                let a = a % n;
                let end = (a + len).min(b.len());
                if a < end {
                    b.drain(a..end);
                }
            }
            Edit::Insert(a, s) => {
                let a = a % (b.len() + 1);
                b.splice(a..a, s.bytes());
            }
            Edit::Duplicate(a, len) => {
                let a = a % n;
                let end = (a + len).min(b.len());
                if a < end {
                    let chunk: Vec<u8> = b[a..end].to_vec();
                    b.splice(end..end, chunk);
                }
            }
            Edit::Truncate(a) => b.truncate(a % n),
            Edit::Replace(a, s) => {
                let a = a % n;
                let end = (a + s.len()).min(b.len());
                if a < end {
                    b.splice(a..end, s.bytes());
                }
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn fet_reader_survives_mutations(edits in proptest::collection::vec(edit(), 1..6)) {
        let text = apply(TINY, &edits);
        if let Ok(m) = fet::read_str(&text, &FetOptions { ignore_unsupported: true }) {
            if let Ok(p) = Problem::compile(&m, &[]) {
                let _ = State::new(&p).cost();
            }
        }
    }

    #[test]
    fn ctt_reader_survives_mutations(edits in proptest::collection::vec(edit(), 1..6)) {
        let text = apply(COMP01, &edits);
        if let Ok(inst) = itc::read_ctt(&text) {
            prop_assert_eq!(&itc::read_ctt(&itc::write_ctt(&inst)).unwrap(), &inst);
            let _ = Problem::compile(&itc::to_model(&inst), &[]);
            let _ = itc::read_solution(&inst, "c0001 B 0 0\nc0001 B 9 9\n");
        }
    }

    #[test]
    fn readers_survive_random_text(s in "\\PC{0,400}") {
        let _ = fet::read_str(&s, &FetOptions::default());
        let _ = itc::read_ctt(&s);
    }
}
