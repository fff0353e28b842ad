//! `/v1/generations/*`: replies by id.

pub mod events;
