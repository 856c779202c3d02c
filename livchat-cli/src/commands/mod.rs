//! One module per command group, as ripgrep's `flags/` keeps its parts apart; `main.rs`
//! only parses and dispatches.

pub(crate) mod app;
pub(crate) mod app_live;
pub(crate) mod job;
pub(crate) mod progress;
pub(crate) mod secrets;
pub(crate) mod server;
