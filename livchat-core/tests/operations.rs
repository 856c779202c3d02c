//! Unit tests of every `Orchestrator` operation against the mockall mock of each leaf trait
//! (`MockProvider`, `MockDnsClient`, `MockConnector`, `MockRemoteExecutor`,
//! `MockContainerPlatform`) over the real in-memory store, vault and job logs; `MockStore` and
//! `MockSecretStore` where the store itself must fail.
//!
//! For each operation: the success path (what was called, with which arguments, how often, and
//! the state that results) and its failure paths (the call that fails at each meaningful
//! point; the job ends failed naming the cause; what the flow created is removed). Plans and
//! refusals run against mocks with no expectation at all: any call would panic.

mod operations {
    pub mod support;

    mod app_live;
    mod byo;
    mod cluster;
    mod create;
    mod delete;
    mod deploy;
    mod jobs;
    mod manual_dns;
    mod ops_layer;
    mod other_provider;
    mod plans;
    mod portainer;
    mod quick;
    mod setup;
    mod store_failures;
    mod undeploy;
}
