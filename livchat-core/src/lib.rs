//! The product's brain: the domain model, the `Orchestrator` and the job system.
//!
//! Owns: the flows of the product (create, add, set up, delete servers; DNS; deploy and
//! undeploy apps; plan), jobs (progress, logs, cancel, retry, interruption after a restart,
//! hard timeouts), and the wiring of the real leaf implementations from a home directory.
//! It composes the leaf crates through their traits and re-exports what frontends need.
//!
//! Must not touch: I/O of its own. Every effect (cloud, DNS, SSH, Docker, disk) goes through a
//! leaf crate's trait, so every path here is testable with mocks in milliseconds. Frontends
//! depend on this crate only.
