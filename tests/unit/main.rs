//! The suites that need nothing outside the crate and run in process: the
//! engine's tables, generated pods, the Router over the fixtures, the fuzz
//! regressions and the layout. One binary, so the crate is linked once.

#[path = "../objects/mod.rs"]
mod objects;

mod builders;
mod catalogs;
mod credentials;
mod engine;
mod flag_tables;
mod fuzz_regressions;
mod layout;
mod leftovers;
mod properties;
mod router;
