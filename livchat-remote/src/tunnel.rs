//! A local end for tunnels through a server: a listener on this machine's loopback whose every
//! connection becomes one [`RemoteExecutor::open_tunnel`] channel to `host:port` as the server
//! sees it (what `ssh -L 127.0.0.1:0:host:port` does). HTTP clients that only speak TCP (the
//! Portainer client's reqwest) reach a service on the server's loopback this way, without that
//! service listening anywhere else.
//!
//! The listener binds 127.0.0.1 on a port the kernel picks and lives as long as the
//! [`LocalForward`]; dropping it stops accepting and closes the tunnels still open. Another
//! local user could connect to it meanwhile, and would reach only what the tunnel reaches
//! (Portainer still asks for its own credentials).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::executor::{RemoteError, RemoteExecutor};

/// A running local forward; see the module docs.
#[derive(Debug)]
pub struct LocalForward {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl LocalForward {
    /// Listens on 127.0.0.1 (a free port) and forwards each connection to `host:port` through
    /// `executor`'s server.
    pub async fn start(
        executor: Arc<dyn RemoteExecutor>,
        host: &str,
        port: u16,
    ) -> Result<Self, RemoteError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| RemoteError::Ssh(format!("could not listen on 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| RemoteError::Ssh(e.to_string()))?;
        let host = host.to_string();
        let accept = tokio::spawn(async move {
            // Owned by this task: aborting it on drop aborts every tunnel still copying.
            let mut tunnels = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut local, _)) = accepted else { return };
                        let executor = executor.clone();
                        let host = host.clone();
                        tunnels.spawn(async move {
                            match executor.open_tunnel(&host, port).await {
                                Ok(mut remote) => {
                                    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote)
                                        .await;
                                }
                                // Dropping `local` closes it: the client sees the failure as a
                                // closed connection, and the reason is logged here.
                                Err(e) => tracing::warn!(%host, port, error = %e, "tunnel refused"),
                            }
                        });
                    }
                    Some(_) = tunnels.join_next(), if !tunnels.is_empty() => {}
                }
            }
        });
        Ok(Self { addr, accept })
    }

    /// Where the local end listens (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LocalForward {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{ExecOptions, ExecOutput, TunnelStream};
    use async_trait::async_trait;
    use secrecy::SecretBox;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    /// A "server" whose tunnels are plain TCP connections from this machine, recording where
    /// each was asked to go.
    #[derive(Default)]
    struct Direct {
        asked: Mutex<Vec<(String, u16)>>,
    }

    #[async_trait]
    impl RemoteExecutor for Direct {
        async fn exec(
            &self,
            _: &crate::Command,
            _: ExecOptions,
        ) -> Result<ExecOutput, RemoteError> {
            unreachable!("the forward runs no command")
        }
        async fn upload(
            &self,
            _: &str,
            _: SecretBox<[u8]>,
            _: u32,
            _: CancellationToken,
        ) -> Result<(), RemoteError> {
            unreachable!("the forward uploads nothing")
        }
        async fn open_tunnel(&self, host: &str, port: u16) -> Result<TunnelStream, RemoteError> {
            self.asked.lock().unwrap().push((host.to_string(), port));
            let stream = tokio::net::TcpStream::connect((host, port))
                .await
                .map_err(|e| RemoteError::Ssh(e.to_string()))?;
            Ok(Box::new(stream))
        }
    }

    #[tokio::test]
    async fn each_local_connection_is_a_tunnel_to_the_remote_address() {
        let echo = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let executor = Arc::new(Direct::default());
        let forward = LocalForward::start(executor.clone(), "127.0.0.1", echo_port)
            .await
            .unwrap();
        assert!(forward.addr().ip().is_loopback());
        for word in ["one", "two"] {
            let mut c = tokio::net::TcpStream::connect(forward.addr())
                .await
                .unwrap();
            c.write_all(word.as_bytes()).await.unwrap();
            let mut buf = vec![0; word.len()];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, word.as_bytes());
        }
        assert_eq!(
            *executor.asked.lock().unwrap(),
            vec![
                ("127.0.0.1".to_string(), echo_port),
                ("127.0.0.1".to_string(), echo_port)
            ]
        );
        let addr = forward.addr();
        drop(forward);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the listener outlived its forward"
        );
    }
}
