//! The suites that run the real server or the binary, on loopback only:
//! TLS and HTTP behaviour, faults and load, hostile input, the hardening,
//! and the command line as users run it.

#[path = "../live_server/mod.rs"]
mod live_server;
#[path = "../objects/mod.rs"]
mod objects;

mod cli;
mod faults;
mod hostile;
mod security;
mod server;
