//! Billing: webhook signatures, the providers' HTTP APIs (checkout and portal links) and the
//! mapping of their events to subscription and credit commands.

pub mod client;
pub mod signature;
pub mod webhooks;
