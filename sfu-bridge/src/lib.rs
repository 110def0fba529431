//! SFU bridge: the Janus WebSocket API client and the `Sfu` abstraction used
//! by the signaling server and the signaling proxy.
//!
//! Not implemented yet: this crate is a placeholder for the SFU issue. The
//! signaling server currently runs without an SFU (no `mcu` features are
//! advertised and `[mcu]` settings are parsed but not acted upon).
