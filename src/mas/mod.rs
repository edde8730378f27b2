//! Client side of the MAS admin API.

pub mod path;
