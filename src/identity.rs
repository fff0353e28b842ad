//! External identity: JWTs verified against a JWKS URL or an HS256 secret.
