//! Which process owns something: the host name and whether a process id is alive, so a job
//! left running by a process that ended can be told from one another process is still running.

/// This machine's host name (from procfs; no unsafe `gethostname`).
pub fn this_host() -> String {
    crate::lock::host_name()
}

/// Whether a process with this id exists on this machine (Linux procfs). A reused pid reads
/// as alive: the cost is a job shown running until that process ends, never a live job marked
/// interrupted.
pub fn process_alive(pid: u32) -> bool {
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_an_impossible_pid_is_not() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX));
        assert!(!this_host().is_empty());
    }
}
