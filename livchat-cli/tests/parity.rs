//! One operation, three frontends: every operation of core's registry has a `livchat`
//! command at the path the registry names (the REST and MCP crates check their side against
//! the same registry). A new operation fails here until the CLI offers it.

use std::process::{Command, Stdio};

#[test]
fn every_core_operation_has_a_cli_command() {
    let mut missing = Vec::new();
    for op in livchat_core::ops::operations() {
        let mut args: Vec<&str> = op.cli.split(' ').collect();
        args.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_livchat"))
            .args(&args)
            .env("LIVCHAT_HOME", "/nonexistent-livchat-parity")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        // `livchat server --help` would also succeed for a missing `server foo`: clap prints
        // the parent's help then, whose usage line does not name the leaf.
        let leaf = args[args.len() - 2];
        let usage_names_it = help
            .lines()
            .find(|l| l.starts_with("Usage:"))
            .is_some_and(|l| l.contains(&format!(" {leaf}")));
        if !out.status.success() || !usage_names_it {
            missing.push(format!("{} (`livchat {}`)", op.name, op.cli));
        }
    }
    assert!(
        missing.is_empty(),
        "operations without a CLI command: {missing:?}"
    );
}
