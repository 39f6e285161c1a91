//! Xiaotong's timetabling engine.
//!
//! * [`model`]: the week grid, teachers, students, rooms, activities and weighted constraints;
//! * [`fet`] and [`itc`]: readers and writers of FET `.fet` files and ITC-2007 track 3 `.ctt` files;
//! * [`ctt`]: simulated annealing on the ITC-2007 soft cost;
//! * [`solver`]: construction plus local search with incremental evaluation;
//! * [`cli`]: the `xiaotong solve` command as a library.

// Index loops over parallel vectors are the clearest form in the search code.
#![allow(clippy::needless_range_loop)]

pub mod cli;
pub mod ctt;
pub mod error;
pub mod fet;
pub mod itc;
pub mod model;
pub mod problem;
pub mod solver;
pub mod state;
mod xml;

pub use error::{Error, Result};
pub use model::*;
