//! Mock Polar and Stripe APIs (checkout and portal links).

use actix_web::web;

/// Registers the mock billing routes.
pub fn routes(_cfg: &mut web::ServiceConfig) {}
