#![no_main]

use libfuzzer_sys::fuzz_target;
use xiaotong_solver::fet::{self, FetOptions};
use xiaotong_solver::problem::Problem;
use xiaotong_solver::state::State;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = FetOptions { ignore_unsupported: true };
    if let Ok(model) = fet::read_str(text, &opts) {
        // Whatever the reader accepts must compile and evaluate without panicking.
        if let Ok(p) = Problem::compile(&model, &[]) {
            let st = State::new(&p);
            let _ = st.cost();
        }
        let _ = fet::read_locked_solution(text, &model);
    }
});
