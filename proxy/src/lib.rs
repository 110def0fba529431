//! The signaling proxy (`/proxy` endpoint in front of Janus).
//!
//! Not implemented yet: this crate is a placeholder for the proxy issue and
//! offers no functionality. There is deliberately no binary, so nothing can be
//! deployed that pretends to work.
