//! `cargo run --release -p xiaotong-solver --example solve -- FILE [options]`:
//! the same command as `xiaotong solve`, for benchmarks.

use clap::Parser;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: xiaotong_solver::cli::SolveArgs,
}

fn main() {
    let cli = Cli::parse();
    let cancel = Arc::new(AtomicBool::new(false));
    match xiaotong_solver::cli::run(cli.args, cancel) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
