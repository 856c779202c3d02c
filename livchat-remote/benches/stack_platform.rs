//! What the platform costs on the caller's side, without the network: validating a rendered
//! stack against the docker/cli schema (done before every deploy), and turning `docker stack
//! services` + `docker stack ps` JSON lines into a `StackStatus` (done on every poll while
//! waiting). Run with `cargo bench -p livchat-remote --bench stack_platform`.

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use livchat_remote::{
    Command, ContainerPlatform, ExecOptions, ExecOutput, RemoteError, RemoteExecutor, SwarmOverSsh,
    validate_stack,
};
use secrecy::SecretBox;
use tokio_util::sync::CancellationToken;

/// An n8n-sized stack: app, worker, postgres and redis with healthchecks, secrets, labels.
fn realistic_stack() -> String {
    let mut yaml = String::from("version: \"3.8\"\nservices:\n");
    for name in ["n8n", "n8n_worker", "postgres", "redis"] {
        yaml.push_str(&format!(
            r#"  {name}:
    image: docker.n8n.io/n8nio/n8n:1.64.3
    command: ["sh", "-c", "exec n8n start"]
    environment:
      DB_TYPE: postgresdb
      DB_POSTGRESDB_HOST: postgres
      DB_POSTGRESDB_PASSWORD_FILE: /run/secrets/n8n_db_password
      N8N_HOST: n8n.example.com
      WEBHOOK_URL: https://n8n.example.com/
    secrets: [n8n_db_password]
    networks: [livchat]
    healthcheck:
      test: ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:5678/healthz"]
      interval: 10s
      timeout: 5s
      retries: 5
      start_period: 30s
    deploy:
      mode: replicated
      replicas: 1
      endpoint_mode: dnsrr
      resources:
        limits: {{cpus: "1", memory: 1024M}}
      restart_policy: {{condition: on-failure, delay: 5s, max_attempts: 5}}
      labels:
        - traefik.enable=true
        - traefik.http.routers.{name}.rule=Host(`n8n.example.com`)
        - traefik.http.routers.{name}.tls.certresolver=letsencrypt
        - traefik.http.services.{name}.loadbalancer.server.port=5678
"#
        ));
    }
    yaml.push_str("networks:\n  livchat:\n    external: true\nsecrets:\n  n8n_db_password:\n    external: true\n");
    yaml
}

/// Answers `docker stack services` and `docker stack ps` for a 20-service stack whose tasks
/// have five entries of history each, as a swarm keeps them.
struct CannedSwarm {
    services: Vec<u8>,
    tasks: Vec<u8>,
}

impl CannedSwarm {
    fn new() -> Self {
        let mut services = String::new();
        let mut tasks = String::new();
        for i in 0..20 {
            services.push_str(&format!(
                r#"{{"ID":"s{i}","Image":"livchat-test/busybox:1","Mode":"replicated","Name":"app_svc{i}","Ports":"","Replicas":"1/1"}}"#
            ));
            services.push('\n');
            for h in 0..5 {
                let (state, error) = if h == 0 {
                    ("Running 5 minutes ago", "")
                } else {
                    ("Failed 10 minutes ago", r#"\"task: non-zero exit (1)\""#)
                };
                tasks.push_str(&format!(
                    r#"{{"CurrentState":"{state}","DesiredState":"Running","Error":"{error}","ID":"t{i}{h}","Image":"livchat-test/busybox:1","Name":"app_svc{i}.1","Node":"vm","Ports":""}}"#
                ));
                tasks.push('\n');
            }
        }
        Self {
            services: services.into_bytes(),
            tasks: tasks.into_bytes(),
        }
    }
}

#[async_trait]
impl RemoteExecutor for CannedSwarm {
    async fn exec(
        &self,
        command: &Command,
        _options: ExecOptions,
    ) -> Result<ExecOutput, RemoteError> {
        let stdout = if command.args.get(1).map(String::as_str) == Some("services") {
            self.services.clone()
        } else {
            self.tasks.clone()
        };
        Ok(ExecOutput {
            exit_status: 0,
            stdout,
            stderr: Vec::new(),
        })
    }

    async fn upload(
        &self,
        _path: &str,
        _content: SecretBox<[u8]>,
        _mode: u32,
        _cancel: CancellationToken,
    ) -> Result<(), RemoteError> {
        Ok(())
    }
}

fn benches(c: &mut Criterion) {
    let yaml = realistic_stack();
    validate_stack(&yaml).expect("the benchmark stack is valid");
    c.bench_function("validate_stack (4 services, n8n-sized)", |b| {
        b.iter(|| validate_stack(black_box(&yaml)).unwrap())
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let platform = SwarmOverSsh::new(Arc::new(CannedSwarm::new()));
    c.bench_function("stack_status parse (20 services x 5 tasks)", |b| {
        b.iter(|| runtime.block_on(platform.stack_status("app")).unwrap())
    });
}

criterion_group!(group, benches);
criterion_main!(group);
