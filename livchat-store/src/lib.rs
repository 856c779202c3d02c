//! The local store of a LivChat home directory: `state.json` and `credentials.vault`.
//!
//! Owns: the `Store` trait and its implementations (`JsonFileStore` on `<home>/state.json`,
//! an in-memory store for tests), the state schema with its version and migrations, the one
//! transactional `update` (lock, read, modify, atomic write, backup), the fixed set of settings
//! keys, and the Ansible-Vault-1.1/1.2-compatible vault holding every secret.
//!
//! Must not touch: the network, SSH, clouds, or any other internal crate. A secret never enters
//! `state.json`; the state never holds anything that would be trouble if committed to GitHub.
