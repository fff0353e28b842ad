//! Billing providers' wire: webhook signatures and their HTTP APIs (checkout and portal links).
//! What a delivered event does to an account is `services::webhooks`.

pub mod client;
pub mod payloads;
pub mod signature;
