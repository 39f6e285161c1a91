//! Xiaotong (校通): message center, service hall and lesson hours for
//! vocational schools, colleges and training institutions.

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
