//! What a server has to run apps on: its CPUs and memory, read in one command so that a
//! deploy can compare them with what its apps need (core's preflight) without guessing from
//! the provider's server type (a server brought by its user has none).

use std::time::Duration;

use crate::command::system;
use crate::executor::{ExecOptions, RemoteError, RemoteExecutor};

/// CPUs and memory as the server's kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// Online CPUs (`processor` entries of `/proc/cpuinfo`).
    pub cpus: u32,
    /// `MemTotal` of `/proc/meminfo`, in MiB.
    pub memory_mb: u64,
}

impl Resources {
    /// Parses the output of [`system::resources`].
    pub fn parse(text: &str) -> Result<Resources, RemoteError> {
        let bad = |reason: &str| RemoteError::Invalid {
            field: "server resources".into(),
            reason: reason.into(),
        };
        let mut cpus = 0u32;
        let mut mem_kb = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("/proc/meminfo:MemTotal:") {
                let kb = rest
                    .trim()
                    .strip_suffix("kB")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .ok_or_else(|| bad("MemTotal of /proc/meminfo is not a number of kB"))?;
                mem_kb = Some(kb);
            } else if line.starts_with("/proc/cpuinfo:processor") {
                cpus += 1;
            }
        }
        let mem_kb = mem_kb.ok_or_else(|| bad("/proc/meminfo has no MemTotal"))?;
        if cpus == 0 {
            return Err(bad("/proc/cpuinfo lists no processor"));
        }
        Ok(Resources {
            cpus,
            memory_mb: mem_kb / 1024,
        })
    }
}

/// Reads the server's CPUs and memory (one round trip).
pub async fn read_resources(executor: &dyn RemoteExecutor) -> Result<Resources, RemoteError> {
    let out = executor
        .exec(
            &system::resources(),
            ExecOptions {
                timeout: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .await?;
    if !out.success() {
        return Err(RemoteError::Invalid {
            field: "server resources".into(),
            reason: format!(
                "/proc/meminfo and /proc/cpuinfo could not be read: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Resources::parse(&String::from_utf8_lossy(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_cpus_are_read_from_greps_prefixed_lines() {
        let text = "/proc/meminfo:MemTotal:        3911856 kB\n\
                    /proc/cpuinfo:processor\t: 0\n\
                    /proc/cpuinfo:processor\t: 1\n";
        assert_eq!(
            Resources::parse(text).unwrap(),
            Resources {
                cpus: 2,
                memory_mb: 3820
            }
        );
    }

    #[test]
    fn output_without_memory_or_cpus_is_an_error_naming_what_is_missing() {
        let no_mem = Resources::parse("/proc/cpuinfo:processor\t: 0\n").unwrap_err();
        assert!(no_mem.to_string().contains("MemTotal"), "{no_mem}");
        let no_cpu = Resources::parse("/proc/meminfo:MemTotal: 1024 kB\n").unwrap_err();
        assert!(no_cpu.to_string().contains("processor"), "{no_cpu}");
    }
}
