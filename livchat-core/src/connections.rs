//! The per-process SSH connection cache: one connection per server, reused by every command
//! of every job, and dropped from the cache once it is found dead so the next command opens
//! a new one (a long-lived process would otherwise report "disconnected" for that server
//! forever).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use livchat_remote::{Command, ExecOptions, ExecOutput, RemoteError, RemoteExecutor};
use secrecy::SecretBox;
use tokio_util::sync::CancellationToken;

/// Server name to its open connection. Locked only to read or write the map, never across a
/// connect, so one slow or dead server does not hold up the others.
pub(crate) type ConnectionMap = tokio::sync::Mutex<HashMap<String, Arc<dyn RemoteExecutor>>>;

/// A cached connection as handed out: a command that finds the connection gone removes it
/// from the cache (if the cache still holds this one).
pub(crate) struct Evicting {
    inner: Arc<dyn RemoteExecutor>,
    server: String,
    cache: Weak<ConnectionMap>,
}

impl Evicting {
    pub(crate) fn wrap(
        inner: Arc<dyn RemoteExecutor>,
        server: &str,
        cache: &Arc<ConnectionMap>,
    ) -> Arc<dyn RemoteExecutor> {
        Arc::new(Evicting {
            inner,
            server: server.to_string(),
            cache: Arc::downgrade(cache),
        })
    }

    async fn evict_if_gone<T>(&self, result: &Result<T, RemoteError>) {
        if let Err(e) = result {
            self.evict_if_lost(e).await;
        }
    }

    async fn evict_if_lost(&self, error: &RemoteError) {
        if !matches!(error, RemoteError::Disconnected { .. }) {
            return;
        }
        let Some(cache) = self.cache.upgrade() else {
            return;
        };
        let mut map = cache.lock().await;
        // A newer connection may already have replaced this one: keep that.
        if map
            .get(&self.server)
            .is_some_and(|e| Arc::ptr_eq(e, &self.inner))
        {
            map.remove(&self.server);
        }
    }
}

#[async_trait]
impl RemoteExecutor for Evicting {
    async fn exec(
        &self,
        command: &Command,
        options: ExecOptions,
    ) -> Result<ExecOutput, RemoteError> {
        let result = self.inner.exec(command, options).await;
        self.evict_if_gone(&result).await;
        result
    }

    async fn upload(
        &self,
        path: &str,
        content: SecretBox<[u8]>,
        mode: u32,
        cancel: CancellationToken,
    ) -> Result<(), RemoteError> {
        let result = self.inner.upload(path, content, mode, cancel).await;
        self.evict_if_gone(&result).await;
        result
    }

    async fn open_tunnel(
        &self,
        host: &str,
        port: u16,
    ) -> Result<livchat_remote::TunnelStream, RemoteError> {
        match self.inner.open_tunnel(host, port).await {
            Ok(stream) => Ok(stream),
            // The error alone: a result holding the stream (not Sync) cannot live across await.
            Err(e) => {
                self.evict_if_lost(&e).await;
                Err(e)
            }
        }
    }
}
