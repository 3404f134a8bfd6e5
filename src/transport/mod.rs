//! The go-plugin net/rpc transport: process handshake, yamux, MuxBroker and Go net/rpc framing. It depends on
//! the gob codec only; [`crate::plugin_mode`] wires it to the Argo `Plugin` service.
//!
//! Spec: `docs/wire/go-plugin-netrpc.md`. One session, outside in:
//!
//! # Layout
//! - [`handshake`]: the magic cookie, the protocol version, the private unix socket and the stdout line.
//! - [`frame`]: the pure 12-byte yamux frame header codec.
//! - [`mux`]: the yamux server session (streams, flow control, pings, GoAway).
//! - [`netrpc`]: Go net/rpc framing over gob on one stream; concurrent calls.
//! - [`control`]: the control stream's `Control` and `Dispenser` services.
//! - [`broker`]: the MuxBroker accept side that connects the `Plugin` service's stream.

pub mod broker;
pub mod control;
pub mod frame;
pub mod handshake;
pub mod mux;
pub mod netrpc;
