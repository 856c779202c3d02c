//! The container platform of a Swarm cluster's manager (issue #16): everything goes to the
//! manager, which sees the whole swarm, except what `docker` does only on the node it runs on:
//! `exec` into a service (tried on the manager, then on each other node until one runs a task
//! of it) and removing a stack's volumes (on every node: a database's data is on the node it
//! was pinned to).

use std::sync::Arc;

use livchat_remote::{ContainerPlatform, ExecOutput, PlatformError, ServiceExec};
use secrecy::{ExposeSecret, SecretBox};

use crate::{Orchestrator, Result};

pub(crate) struct ClusterPlatform {
    manager: Arc<dyn ContainerPlatform>,
    /// The other nodes' platforms, workers first (databases are pinned to where their data is).
    others: Vec<Arc<dyn ContainerPlatform>>,
}

fn copy(exec: &ServiceExec) -> ServiceExec {
    ServiceExec {
        stack: exec.stack.clone(),
        service: exec.service.clone(),
        argv: exec.argv.clone(),
        stdin: exec
            .stdin
            .as_ref()
            .map(|s| SecretBox::new(s.expose_secret().to_vec().into_boxed_slice())),
        user: exec.user.clone(),
        timeout: exec.timeout,
        cancel: exec.cancel.clone(),
    }
}

impl Orchestrator {
    /// `own`, the platform of `name`, or, when `name` manages a cluster, the cluster's. A node
    /// that cannot be reached is left out (logged): only `exec` into its tasks needs it.
    pub(crate) async fn on_cluster(
        &self,
        name: &str,
        own: Arc<dyn ContainerPlatform>,
    ) -> Result<Arc<dyn ContainerPlatform>> {
        let state = self.store.load()?;
        let Some(cluster) = state.clusters.get(name) else {
            return Ok(own);
        };
        let mut nodes: Vec<(&String, livchat_store::NodeRole)> = cluster
            .nodes
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(n, node)| (n, node.role))
            .collect();
        nodes.sort_by_key(|(_, role)| *role == livchat_store::NodeRole::Manager);
        let mut others = Vec::new();
        for (node, _) in nodes {
            match self.executor(node).await {
                Ok(executor) => others.push((self.platform_factory)(executor)),
                Err(e) => tracing::warn!("cluster {name}: node {node} not reached: {e}"),
            }
        }
        Ok(Arc::new(ClusterPlatform {
            manager: own,
            others,
        }))
    }
}

// Everything on the manager, which sees the whole swarm, but for the two calls below.
livchat_remote::forward_platform! {
    impl for ClusterPlatform => manager;
    forward ensure_network, ensure_secrets, deploy_stack, remove_stack, remove_secrets,
        stack_status, wait_healthy, rollback_stack, service_logs, follow_service_logs;

    async fn remove_stack_volumes(&self, name: &str) -> Result<Vec<String>, PlatformError> {
        let mut removed = self.manager.remove_stack_volumes(name).await?;
        for node in &self.others {
            removed.extend(node.remove_stack_volumes(name).await?);
        }
        Ok(removed)
    }

    async fn exec_in_service(&self, exec: ServiceExec) -> Result<ExecOutput, PlatformError> {
        let mut last = match self.manager.exec_in_service(copy(&exec)).await {
            Err(e @ PlatformError::NotFound { .. }) => e,
            other => return other,
        };
        for node in &self.others {
            match node.exec_in_service(copy(&exec)).await {
                Err(e @ PlatformError::NotFound { .. }) => last = e,
                other => return other,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use livchat_remote::platform::MockContainerPlatform;
    use tokio_util::sync::CancellationToken;

    use super::*;

    fn exec() -> ServiceExec {
        ServiceExec {
            stack: "postgres".into(),
            service: "postgres".into(),
            argv: vec!["psql".into()],
            stdin: Some(SecretBox::new(b"secret-sql".to_vec().into_boxed_slice())),
            user: None,
            timeout: std::time::Duration::from_secs(5),
            cancel: CancellationToken::new(),
        }
    }

    #[tokio::test]
    async fn exec_goes_to_the_node_running_the_task_with_its_stdin_and_volumes_go_everywhere() {
        let mut manager = MockContainerPlatform::new();
        manager.expect_exec_in_service().times(1).returning(|_| {
            Err(PlatformError::NotFound {
                what: "running task on this node".into(),
            })
        });
        manager
            .expect_remove_stack_volumes()
            .returning(|_| Ok(vec!["on-manager".into()]));
        let mut worker = MockContainerPlatform::new();
        worker
            .expect_exec_in_service()
            .withf(|e| {
                e.stdin
                    .as_ref()
                    .is_some_and(|s| s.expose_secret() == b"secret-sql")
            })
            .times(1)
            .returning(|_| {
                Ok(ExecOutput {
                    exit_status: 0,
                    stdout: b"done".to_vec(),
                    stderr: Vec::new(),
                })
            });
        worker
            .expect_remove_stack_volumes()
            .returning(|_| Ok(vec!["postgres_postgres_data".into()]));
        let cluster = ClusterPlatform {
            manager: Arc::new(manager),
            others: vec![Arc::new(worker)],
        };
        assert_eq!(
            cluster.exec_in_service(exec()).await.unwrap().stdout,
            b"done"
        );
        assert_eq!(
            cluster.remove_stack_volumes("postgres").await.unwrap(),
            ["on-manager", "postgres_postgres_data"]
        );
    }

    #[tokio::test]
    async fn a_service_running_nowhere_is_not_found() {
        let not_found = |_| {
            Err(PlatformError::NotFound {
                what: "running task".into(),
            })
        };
        let mut manager = MockContainerPlatform::new();
        manager.expect_exec_in_service().returning(not_found);
        let mut worker = MockContainerPlatform::new();
        worker.expect_exec_in_service().returning(not_found);
        let cluster = ClusterPlatform {
            manager: Arc::new(manager),
            others: vec![Arc::new(worker)],
        };
        let err = cluster.exec_in_service(exec()).await.unwrap_err();
        assert!(matches!(err, PlatformError::NotFound { .. }), "{err}");
    }
}
