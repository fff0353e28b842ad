//! The CLI's commands, one file each.

pub mod migrate;
pub mod projections;
pub mod reports;
pub mod serve;
