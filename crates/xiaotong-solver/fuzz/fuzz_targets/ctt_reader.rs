#![no_main]

use libfuzzer_sys::fuzz_target;
use xiaotong_solver::itc;
use xiaotong_solver::problem::Problem;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The input may hold an instance, then "---", then a solution.
    let (inst_text, sol_text) = text.split_once("\n---\n").unwrap_or((text, ""));
    if let Ok(inst) = itc::read_ctt(inst_text) {
        let again = itc::read_ctt(&itc::write_ctt(&inst)).expect("written instance reads back");
        assert_eq!(again, inst);
        let _ = Problem::compile(&itc::to_model(&inst), &[]);
        if let Ok(lectures) = itc::read_solution(&inst, sol_text) {
            let _ = itc::score(&inst, &lectures);
        }
    }
});
