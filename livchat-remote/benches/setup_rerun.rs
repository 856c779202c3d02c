//! Idempotent re-run of the whole setup plan against an already set-up host, over real SSH
//! (fixtures::sshd::DebianHost, in its own network namespace on this machine), and the cost of
//! one command round trip on a reused connection (fixtures::sshd::Sshd on loopback).
//!
//! `cargo bench -p livchat-remote --bench setup_rerun`. The first, real setup run (apt, Docker,
//! Swarm; a minute or two) is not measured. The number of SSH round trips of a re-run is
//! printed (one: every check in one batch), and so is each check's own time when it runs
//! alone (one round trip each), to show where a re-run's time goes.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fixtures::sshd::{DebianHost, Sshd};
use livchat_remote::command::Command;
use livchat_remote::setup::{DockerSource, RunOptions, SetupConfig, StepState, plan, run_plan};
use livchat_remote::{ExecOptions, HostKeyPolicy, RemoteExecutor, SshConnector, SshTarget};
use secrecy::SecretString;

fn rerun(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(host) = DebianHost::start() else {
        eprintln!("skipped: no DebianHost tools");
        return;
    };
    let target = SshTarget {
        name: "bench-host".into(),
        host: host.host(),
        port: host.port(),
        user: host.user().into(),
    };
    let key = SecretString::from(host.client_private_key().to_owned());
    let (exec, _) = rt
        .block_on(SshConnector::default().connect_ssh(
            &target,
            &key,
            &HostKeyPolicy::TrustOnFirstUse,
        ))
        .unwrap();
    let os = rt
        .block_on(livchat_remote::detect_os(exec.as_ref()))
        .unwrap();
    let mut config = SetupConfig::new("bench-host", host.addr().into()).unwrap();
    config.docker = DockerSource::Distribution;
    let steps = plan(&config, &os).unwrap();
    let options = RunOptions {
        step_timeout: Duration::from_secs(900),
        ..Default::default()
    };
    let first = rt
        .block_on(run_plan(exec.as_ref(), &steps, options.clone()))
        .unwrap();
    eprintln!(
        "initial setup: {} steps in {:.1?}, {} round trips",
        first.steps.len(),
        first.elapsed,
        first.round_trips
    );
    let again = rt
        .block_on(run_plan(exec.as_ref(), &steps, options.clone()))
        .unwrap();
    assert!(again.steps.iter().all(|(_, s)| *s == StepState::Skipped));
    eprintln!(
        "re-run: {} steps, all skipped, {} SSH round trips (executor counted {} so far)",
        again.steps.len(),
        again.round_trips,
        exec.round_trips()
    );
    for step in &steps {
        let t = std::time::Instant::now();
        let alone = rt
            .block_on(run_plan(
                exec.as_ref(),
                std::slice::from_ref(step),
                options.clone(),
            ))
            .unwrap();
        eprintln!(
            "check of {:<20} alone: {:>6.1?} ({:?})",
            step.id,
            t.elapsed(),
            alone.steps[0].1
        );
    }
    let mut group = c.benchmark_group("setup");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("idempotent_rerun_debian12", |b| {
        b.iter(|| {
            rt.block_on(run_plan(exec.as_ref(), &steps, options.clone()))
                .unwrap()
        })
    });
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(sshd) = Sshd::start() else {
        eprintln!("skipped: no sshd");
        return;
    };
    let target = SshTarget {
        name: "bench".into(),
        host: sshd.host(),
        port: sshd.port(),
        user: sshd.user().into(),
    };
    let key = SecretString::from(sshd.client_private_key().to_owned());
    let (exec, _) = rt
        .block_on(SshConnector::default().connect_ssh(
            &target,
            &key,
            &HostKeyPolicy::TrustOnFirstUse,
        ))
        .unwrap();
    let mut group = c.benchmark_group("ssh");
    group.sample_size(30);
    group.bench_function("exec_true_reused_connection", |b| {
        b.iter(|| {
            rt.block_on(exec.exec(&Command::new("true"), ExecOptions::default()))
                .unwrap()
        })
    });
    group.bench_function("connect_and_authenticate", |b| {
        b.iter(|| {
            rt.block_on(SshConnector::default().connect_ssh(
                &target,
                &key,
                &HostKeyPolicy::TrustOnFirstUse,
            ))
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, round_trip, rerun);
criterion_main!(benches);
