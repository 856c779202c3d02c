//! Log events from the library crates (`tracing`) to stderr: warnings by default, so a provider
//! retry or a stale lock taken over reaches the user; `-v`, `-vv`, `-vvv` for more; `RUST_LOG`
//! (tracing's `EnvFilter` syntax) overrides both. Stdout stays for results only.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The crates whose events `-v` turns up (targets are module paths).
const OURS: &[&str] = &[
    "livchat",
    "livchat_core",
    "livchat_store",
    "livchat_providers",
    "livchat_remote",
    "livchat_apps",
];

/// The filter for `verbose` (the count of `-v`) when `RUST_LOG` is unset: other crates stay at
/// warnings until `-vvv`, since SSH and HTTP libraries are loud at debug level.
pub fn filter_for(verbose: u8) -> String {
    let ours = match verbose {
        0 => return "warn".into(),
        1 => "info",
        2 => "debug",
        _ => return "trace".into(),
    };
    std::iter::once("warn".to_string())
        .chain(OURS.iter().map(|c| format!("{c}={ours}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Installs the stderr subscriber. A `RUST_LOG` that does not parse is reported and replaced by
/// the `-v` level, rather than silencing everything.
pub fn init(verbose: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: ignoring RUST_LOG={spec:?}: {e}");
            EnvFilter::new(filter_for(verbose))
        }),
        _ => EnvFilter::new(filter_for(verbose)),
    };
    // try_init: a second call (never expected) must not abort the command.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbose >= 2)
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verbose_step_raises_only_our_crates_until_trace() {
        assert_eq!(filter_for(0), "warn");
        let one = filter_for(1);
        assert!(one.starts_with("warn,"), "{one}");
        assert!(one.contains("livchat_providers=info"), "{one}");
        assert!(filter_for(2).contains("livchat_remote=debug"));
        assert_eq!(filter_for(3), "trace");
        assert_eq!(filter_for(9), "trace");
        for v in 0..4 {
            assert!(EnvFilter::try_new(filter_for(v)).is_ok(), "-v x{v}");
        }
    }
}
