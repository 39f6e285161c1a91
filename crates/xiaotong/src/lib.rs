//! Xiaotong (校通): message center, service hall and lesson hours for
//! vocational schools, colleges and training institutions.

// Each request allocates and frees many small buffers (rows, JSON, SQL
// text) on every worker thread. Under `cargo xtask bench checkin`, glibc's
// malloc and free took a fifth of the process's time; with mimalloc the
// process needs about a tenth less CPU. Set in the library so the binary,
// its tests and its benchmarks all run with it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod audit;
pub mod auth;
pub mod chain;
pub mod cli;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod directory;
pub mod error;
pub mod http;
pub mod jobs;
pub mod lessons;
pub mod messaging;
pub mod server;
