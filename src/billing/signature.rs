//! Webhook signature verification (filled in below).
