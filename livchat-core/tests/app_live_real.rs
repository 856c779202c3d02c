//! Apps on real parts through the orchestrator: its real SSH connector and Swarm platform
//! against a real sshd whose sessions talk to a real dockerd in Swarm mode (the `fixtures`
//! harnesses the Swarm tests of livchat-remote use), with a busybox image built locally.
//!
//! - `status`: `app_status` and `app_logs` read a deployed stack back from the swarm.
//! - `portainer`: #18, an app deployed after the infrastructure bundle is Portainer's.
//! - `redeploy`: #13, a good version, a crashing one (the job fails with Swarm's message, the
//!   previous version serves again and the state says so), the good one again, as jobs.
//!
//! Needs root, `docker.io`, `openssh-server` and `busybox-static` (installed by
//! `cargo xtask setup`); skipped with a message when they are missing, failing under
//! `LIVCHAT_REAL_TESTS=1`.

mod app_live_real {
    pub mod rig;

    mod portainer;
    mod redeploy;
    mod status;
}
