//! A bound endpoint and its accept loop: a connection permit is taken before each
//! `accept`, so that past the limit new connections wait in the kernel's backlog, and a
//! failed accept backs off instead of spinning.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::connection::{self, Shared};
use super::counters::Counters;
use super::hosts::{AllowedHosts, HostName};
use super::limits::{Limits, READ_BUFFER};
use super::response::Body;

/// A bound endpoint, ready to serve.
pub struct Server {
    pub(super) listener: TcpListener,
    /// How the log names it, e.g. `lab page`.
    name: &'static str,
    limits: Limits,
    hosts: AllowedHosts,
    counters: Arc<Counters>,
}

impl Server {
    /// Binds `addr` for the endpoint `endpoint` (the `/metrics` label), which the log
    /// calls `name`, answering to the `Host` names `allowed` adds to its own.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(
        addr: SocketAddr,
        endpoint: &'static str,
        name: &'static str,
        limits: Limits,
        allowed: &[HostName],
    ) -> Result<Server> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {name} {addr}"))?;
        let port = listener
            .local_addr()
            .with_context(|| format!("the {name}'s address"))?
            .port();
        Ok(Server {
            listener,
            name,
            limits,
            hosts: AllowedHosts::new(port, allowed),
            counters: Arc::new(Counters::new(endpoint)),
        })
    }

    /// The endpoint's counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Answers every request that names this server with `handler`, until the task is
    /// cancelled.
    pub async fn serve<F, Fut>(self, handler: F)
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_header_size(self.limits.max_head_bytes)
            .max_buf_size(READ_BUFFER);
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        let shared = Arc::new(Shared {
            name: self.name,
            limits: self.limits,
            hosts: self.hosts,
            counters: self.counters,
            http,
            handler,
        });
        let mut backoff = AcceptBackoff::default();
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return; // never closed
            };
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let failed = backoff.succeeded();
                    if failed > 0 {
                        tracing::info!(
                            "{}: accepting again after {failed} failed accepts",
                            self.name
                        );
                    }
                    shared.counters.accepted.fetch_add(1, Relaxed);
                    tokio::spawn(connection::serve(stream, peer, shared.clone(), permit));
                }
                // The client gave up before the accept: nothing is short, try the next one.
                Err(e) if is_per_connection(&e) => {}
                Err(e) => {
                    shared.counters.accept_errors.fetch_add(1, Relaxed);
                    let (delay, first) = backoff.failed();
                    if first {
                        tracing::warn!(
                            "{}: accept failed ({e}); retrying with a growing delay up to {:?}",
                            self.name,
                            AcceptBackoff::MAX
                        );
                    }
                    drop(permit);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// Errors of `accept` that concern only the connection being accepted.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}

/// How long the accept loop sleeps after a failed accept, so that running out of
/// descriptors or buffers never turns into a busy loop: 10 ms, doubled after each failure
/// in a row, at most [`AcceptBackoff::MAX`].
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// After a failure: how long to wait, and whether it is the first of an episode.
    fn failed(&mut self) -> (Duration, bool) {
        self.failures = self.failures.saturating_add(1);
        let delay = Self::FIRST.saturating_mul(1 << (self.failures - 1).min(16));
        (delay.min(Self::MAX), self.failures == 1)
    }

    /// After a success: how many failures in a row it ends.
    fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_back_off_from_10_ms_to_a_second_and_start_over() {
        let mut backoff = AcceptBackoff::default();
        let delays: Vec<_> = (0..10).map(|_| backoff.failed()).collect();
        assert_eq!(delays[0], (Duration::from_millis(10), true));
        assert_eq!(delays[1], (Duration::from_millis(20), false));
        assert_eq!(delays[6], (Duration::from_millis(640), false));
        assert!(delays[7..]
            .iter()
            .all(|&d| d == (AcceptBackoff::MAX, false)));
        for _ in 0..100 {
            assert!(backoff.failed().0 <= AcceptBackoff::MAX);
        }
        assert_eq!(backoff.succeeded(), 110);
        assert_eq!(backoff.failed(), (Duration::from_millis(10), true));
    }
}
