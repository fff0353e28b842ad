//! Attachments: what an upload is ([`sniff`]) and where its bytes live ([`store`]). The `File`
//! aggregate records the metadata; `services::files` ties the two together.

pub mod sniff;
pub mod store;

pub use store::{FileStore, StorageSettings};
