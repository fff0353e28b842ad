//! Checkout and portal links through the billing providers' HTTP APIs.
