//! The go-plugin net/rpc transport: process handshake, yamux, MuxBroker and Go net/rpc framing.
