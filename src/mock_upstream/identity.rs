//! A mock identity provider: a JWKS document with a fixed test key.

use actix_web::web;

/// Registers the mock identity routes.
pub fn routes(_cfg: &mut web::ServiceConfig) {}
