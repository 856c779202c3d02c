//! The app catalog: YAML definitions, dependency resolution and stack rendering.
//!
//! Owns: the definition format (and its generated JSON Schema), the built-in definitions
//! embedded in the binary plus the user's from `LIVCHAT_APPS_DIR`, the resolver (install order,
//! reverse dependencies), and rendering a definition into a Swarm stack file with tera,
//! validated against the schema `docker stack deploy` uses.
//!
//! Must not touch: the network, disk writes, SSH, clouds, the vault, or any other internal
//! crate. It is pure: given definitions and a context, it returns text.
