//! Health checks, as keepalived and ldirectord users expect them: every real server of
//! every service is probed from the director (a TCP connect, or an HTTP GET with an
//! expected status) every interval; after `fall` failures in a row it is quiesced (weight
//! 0: established connections carry on, new ones go elsewhere) or removed, and after `rise`
//! successes in a row it gets its weight (or its place) back. State changes are logged,
//! visible in `-L` (the weight) and in the metrics (`masq_destination_up`).
//!
//! Probes run on the control-plane runtime, never on the packet threads. The director's own
//! kernel makes the connections (from the DIP), so the replies never reach masq's data path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use masq_core::control::{Control, DestKey, DestParams, ServiceKey};
use masq_core::Director;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::clock::Clock;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connection that opens.
    Tcp,
    /// `GET path` answered with `status`.
    Http { path: String, status: u16 },
}

impl std::str::FromStr for Probe {
    type Err = String;

    /// `tcp`, `http`, `http:/path` or `http:/path:200`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "tcp" {
            return Ok(Probe::Tcp);
        }
        let rest = s
            .strip_prefix("http")
            .ok_or_else(|| format!("`{s}': use tcp, http, http:/PATH or http:/PATH:STATUS"))?;
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        if rest.is_empty() {
            return Ok(Probe::Http {
                path: "/".into(),
                status: 200,
            });
        }
        if !rest.starts_with('/') {
            return Err(format!("`{s}': the HTTP path must start with /"));
        }
        let (path, status) = match rest.rsplit_once(':') {
            Some((p, st)) => (
                p.to_string(),
                st.parse()
                    .map_err(|_| format!("`{s}': `{st}' is not an HTTP status"))?,
            ),
            None => (rest.to_string(), 200),
        };
        Ok(Probe::Http { path, status })
    }
}

/// What to do with a failed real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnFailure {
    /// Weight 0 until it recovers (existing connections continue).
    Quiesce,
    /// Deleted from its service until it recovers.
    Remove,
}

/// The health-check settings (`--health-*`).
#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub on_failure: OnFailure,
}

/// One real server's health, shared with the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub up: bool,
    ok_streak: u32,
    fail_streak: u32,
}

/// A real server taken out of service and what it had before.
#[derive(Debug, Clone, Copy)]
struct Parked {
    params: DestParams,
}

/// Health of every checked real server, by (service, destination).
pub type HealthMap = Mutex<HashMap<(ServiceKey, DestKey), Health>>;

/// Runs the checks of `director`'s real servers forever, keeping `health` up to date (the
/// task is aborted at shutdown).
pub async fn run(
    director: Arc<Director>,
    clock: Clock,
    health: Arc<HealthMap>,
    config: HealthConfig,
) {
    let mut parked: HashMap<(ServiceKey, DestKey), Parked> = HashMap::new();
    let mut tick = tokio::time::interval(config.interval);
    loop {
        tick.tick().await;
        // Everything configured now, plus what this checker took out of service.
        let mut targets: Vec<(ServiceKey, DestKey)> = Vec::new();
        for svc in director.control(clock.now()).services() {
            for d in &svc.dests {
                targets.push((svc.key, d.key));
            }
        }
        for key in parked.keys() {
            if !targets.contains(key) {
                targets.push(*key);
            }
        }
        // All probes of a round run at once, each bounded by the timeout.
        let mut set = tokio::task::JoinSet::new();
        for (i, &(_, dest)) in targets.iter().enumerate() {
            let config = config.clone();
            set.spawn(async move { (i, probe(&config, dest).await) });
        }
        let mut results = vec![false; targets.len()];
        while let Some(joined) = set.join_next().await {
            if let Ok((i, ok)) = joined {
                results[i] = ok;
            }
        }
        let mut map = health.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|k, _| targets.contains(k));
        for (&(svc, dest), ok) in targets.iter().zip(results) {
            let h = map.entry((svc, dest)).or_insert(Health {
                up: true,
                ok_streak: 0,
                fail_streak: 0,
            });
            if ok {
                h.ok_streak += 1;
                h.fail_streak = 0;
            } else {
                h.fail_streak += 1;
                h.ok_streak = 0;
            }
            if h.up && h.fail_streak >= config.fall {
                h.up = false;
                take_out(
                    &director.control(clock.now()),
                    &config,
                    svc,
                    dest,
                    &mut parked,
                );
            } else if !h.up && h.ok_streak >= config.rise {
                h.up = true;
                bring_back(&director.control(clock.now()), svc, dest, &mut parked);
            }
        }
    }
}

/// One probe of `dest`; `true` when it is healthy.
async fn probe(config: &HealthConfig, dest: DestKey) -> bool {
    let addr = SocketAddr::new(dest.addr, dest.port);
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        match &config.probe {
            Probe::Tcp => Some(true),
            Probe::Http { path, status } => {
                let request = format!(
                    "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: masqd-health\r\nConnection: close\r\n\r\n",
                    dest.addr
                );
                stream.write_all(request.as_bytes()).await.ok()?;
                let mut head = [0u8; 64];
                let n = stream.read(&mut head).await.ok()?;
                // "HTTP/1.x NNN ..."
                let line = std::str::from_utf8(&head[..n]).ok()?;
                let code: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(code == *status)
            }
        }
    };
    matches!(
        tokio::time::timeout(config.timeout, attempt).await,
        Ok(Some(true))
    )
}

fn take_out(
    control: &impl Control,
    config: &HealthConfig,
    svc: ServiceKey,
    dest: DestKey,
    parked: &mut HashMap<(ServiceKey, DestKey), Parked>,
) {
    let Some(params) = control
        .services()
        .into_iter()
        .find(|s| s.key == svc)
        .and_then(|s| s.dests.into_iter().find(|d| d.key == dest))
        .map(|d| d.params)
    else {
        return;
    };
    let result = match config.on_failure {
        OnFailure::Quiesce => control.edit_dest(
            svc,
            dest,
            DestParams {
                weight: 0,
                ..params
            },
        ),
        OnFailure::Remove => control.delete_dest(svc, dest),
    };
    match result {
        Ok(()) => {
            parked.insert((svc, dest), Parked { params });
            tracing::warn!(
                "health: {}:{} of {svc} failed {} checks: {}",
                dest.addr,
                dest.port,
                config.fall,
                match config.on_failure {
                    OnFailure::Quiesce => "quiesced (weight 0)",
                    OnFailure::Remove => "removed",
                }
            );
        }
        Err(e) => tracing::warn!(
            "health: taking {}:{} out of {svc}: {e}",
            dest.addr,
            dest.port
        ),
    }
}

fn bring_back(
    control: &impl Control,
    svc: ServiceKey,
    dest: DestKey,
    parked: &mut HashMap<(ServiceKey, DestKey), Parked>,
) {
    let Some(Parked { params }) = parked.remove(&(svc, dest)) else {
        return;
    };
    let exists = control
        .services()
        .iter()
        .any(|s| s.key == svc && s.dests.iter().any(|d| d.key == dest));
    let result = if exists {
        control.edit_dest(svc, dest, params)
    } else {
        control.add_dest(svc, dest, params)
    };
    match result {
        Ok(()) => tracing::info!(
            "health: {}:{} of {svc} recovered: back with weight {}",
            dest.addr,
            dest.port,
            params.weight
        ),
        // The service may have been deleted meanwhile: nothing to restore then.
        Err(e) => tracing::info!(
            "health: {}:{} of {svc} recovered but not restored: {e}",
            dest.addr,
            dest.port
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_specs_parse() {
        assert_eq!("tcp".parse::<Probe>(), Ok(Probe::Tcp));
        assert_eq!(
            "http".parse::<Probe>(),
            Ok(Probe::Http {
                path: "/".into(),
                status: 200
            })
        );
        assert_eq!(
            "http:/healthz:204".parse::<Probe>(),
            Ok(Probe::Http {
                path: "/healthz".into(),
                status: 204
            })
        );
        assert_eq!(
            "http:/x".parse::<Probe>(),
            Ok(Probe::Http {
                path: "/x".into(),
                status: 200
            })
        );
        assert!("http:x".parse::<Probe>().is_err());
        assert!("http:/x:abc".parse::<Probe>().is_err());
        assert!("icmp".parse::<Probe>().is_err());
    }
}
