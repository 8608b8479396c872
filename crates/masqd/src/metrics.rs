//! `masqd --metrics ADDR`: the director's counters for Prometheus.
//!
//! Every scrape builds a fresh registry from one consistent read of the director (the
//! counters live in the core; nothing here keeps state). Names follow Prometheus
//! conventions: `masq_` prefix, base units, `_total` on counters. Served read-only over a
//! deliberately tiny HTTP/1.0 responder; bind it to loopback unless told otherwise.

use std::sync::Arc;

use anyhow::{Context, Result};
use masq_core::control::{Control, ServiceKey};
use masq_core::Director;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::context::ControlContext;
use crate::health::HealthMap;
use crate::steering::XdpSteering;

type Labels = Vec<(String, String)>;

fn service_label(key: &ServiceKey) -> Labels {
    match key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => vec![
            ("protocol".into(), protocol.name().to_lowercase()),
            ("vip".into(), addr.to_string()),
            ("port".into(), port.to_string()),
        ],
        ServiceKey::Fwmark { mark, .. } => vec![("fwmark".into(), mark.to_string())],
    }
}

fn with(mut labels: Labels, more: &[(&str, String)]) -> Labels {
    labels.extend(more.iter().map(|(k, v)| (k.to_string(), v.clone())));
    labels
}

/// Renders every metric in the OpenMetrics text format; with `--io xdp`, the ports'
/// counters too.
pub fn render(
    director: &Director,
    clock: &Clock,
    health: &HealthMap,
    xdp: Option<&XdpSteering>,
) -> String {
    let mut registry = Registry::default();
    macro_rules! family {
        ($name:literal, $help:literal, $kind:ty) => {{
            let f = Family::<Labels, $kind>::default();
            registry.register($name, $help, f.clone());
            f
        }};
    }
    let conns = family!("masq_connections", "Connections scheduled", Counter);
    let packets = family!(
        "masq_packets",
        "Packets forwarded (direction in = client to server)",
        Counter
    );
    let bytes = family!("masq_bytes", "Bytes forwarded, IP total length", Counter);
    let cps = family!(
        "masq_connection_rate",
        "Connections per second (2 s estimator)",
        Gauge
    );
    let pps = family!(
        "masq_packet_rate",
        "Packets per second (2 s estimator)",
        Gauge
    );
    let bps = family!("masq_byte_rate", "Bytes per second (2 s estimator)", Gauge);
    let active = family!(
        "masq_destination_active_connections",
        "ActiveConn of a real server",
        Gauge
    );
    let inactive = family!(
        "masq_destination_inactive_connections",
        "InActConn of a real server",
        Gauge
    );
    let persistent = family!(
        "masq_destination_persistent_connections",
        "Persistence templates pointing at a real server",
        Gauge
    );
    let weight = family!(
        "masq_destination_weight",
        "Weight of a real server (0 = quiesced)",
        Gauge
    );
    let drops = family!(
        "masq_dropped_frames",
        "Frames dropped by the director, by reason",
        Counter
    );
    let frames = family!(
        "masq_frames",
        "Frames handled by the director, by outcome",
        Counter
    );
    let entries = family!(
        "masq_connection_entries",
        "Entries in the connection table",
        Gauge
    );

    let control = director.control(clock.now());
    for svc in control.services() {
        let s = service_label(&svc.key);
        conns.get_or_create(&s).inc_by(svc.stats.conns);
        for (dir, p, b, pr, br) in [
            (
                "in",
                svc.stats.inpkts,
                svc.stats.inbytes,
                svc.rate.inpps,
                svc.rate.inbps,
            ),
            (
                "out",
                svc.stats.outpkts,
                svc.stats.outbytes,
                svc.rate.outpps,
                svc.rate.outbps,
            ),
        ] {
            let l = with(s.clone(), &[("direction", dir.into())]);
            packets.get_or_create(&l).inc_by(p);
            bytes.get_or_create(&l).inc_by(b);
            pps.get_or_create(&l).set(pr as i64);
            bps.get_or_create(&l).set(br as i64);
        }
        cps.get_or_create(&s).set(svc.rate.cps as i64);
        for d in &svc.dests {
            let dl = with(
                s.clone(),
                &[("server", format!("{}:{}", d.key.addr, d.key.port))],
            );
            conns.get_or_create(&dl).inc_by(d.stats.conns);
            for (dir, p, b) in [
                ("in", d.stats.inpkts, d.stats.inbytes),
                ("out", d.stats.outpkts, d.stats.outbytes),
            ] {
                let l = with(dl.clone(), &[("direction", dir.into())]);
                packets.get_or_create(&l).inc_by(p);
                bytes.get_or_create(&l).inc_by(b);
            }
            active.get_or_create(&dl).set(i64::from(d.active_conns));
            inactive.get_or_create(&dl).set(i64::from(d.inact_conns));
            persistent
                .get_or_create(&dl)
                .set(i64::from(d.persist_conns));
            weight.get_or_create(&dl).set(i64::from(d.params.weight));
        }
    }
    let totals = director.counters();
    for (reason, n) in &totals.drops {
        drops
            .get_or_create(&vec![("reason".into(), reason.name().into())])
            .inc_by(*n);
    }
    for (outcome, n) in [
        ("forwarded_to_server", totals.forwarded_in),
        ("forwarded_to_client", totals.forwarded_out),
        ("arp_reply", totals.arp_replies),
        ("arp_request", totals.arp_requests),
        ("icmp_sent", totals.icmp_sent),
        ("queued_for_arp", totals.queued),
        ("not_ours", totals.not_ours),
        ("half_open_evicted", totals.evicted_half_open),
    ] {
        frames
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc_by(n);
    }
    entries
        .get_or_create(&Vec::new())
        .set(director.connection_count() as i64);
    let up = family!(
        "masq_destination_up",
        "1 while a health-checked real server passes its checks, 0 while it is out of service",
        Gauge
    );
    for ((svc, dest), h) in health.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let l = with(
            service_label(svc),
            &[("server", format!("{}:{}", dest.addr, dest.port))],
        );
        up.get_or_create(&l).set(i64::from(h.up));
    }
    if let Some(xdp) = xdp {
        render_xdp(&mut registry, xdp);
    }
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// The AF_XDP ports' counters: which path each frame took, and what the kernel dropped.
fn render_xdp(registry: &mut Registry, xdp: &XdpSteering) {
    let frames = Family::<Labels, Counter>::default();
    registry.register(
        "masq_xdp_frames",
        "Frames through an --io xdp port, by side, path (xdp: an AF_XDP socket; kernel: the packet socket, for what the XDP program passed or what needed offload work) and direction",
        frames.clone(),
    );
    let dropped = Family::<Labels, Counter>::default();
    registry.register(
        "masq_xdp_kernel_dropped_frames",
        "Frames the kernel dropped on an --io xdp port, by side and reason (rx: stolen frames with no room in the RX or fill ring; tx_invalid: refused transmit descriptors)",
        dropped.clone(),
    );
    for (side, stats) in xdp.stats() {
        let stats = match stats {
            Ok(stats) => stats,
            Err(e) => {
                tracing::debug!("XDP counters of the {side} side: {e}");
                continue;
            }
        };
        let label = |more: &[(&str, &str)]| -> Labels {
            std::iter::once(("side".to_string(), side.to_string()))
                .chain(more.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .collect()
        };
        for (path, direction, n) in [
            ("xdp", "received", stats.rx_xdp),
            ("kernel", "received", stats.rx_kernel),
            ("xdp", "sent", stats.tx_xdp),
            ("kernel", "sent", stats.tx_kernel),
        ] {
            frames
                .get_or_create(&label(&[("path", path), ("direction", direction)]))
                .inc_by(n);
        }
        for (reason, n) in [
            ("rx", stats.rx_dropped),
            ("tx_invalid", stats.tx_invalid),
            ("malformed_descriptor", stats.malformed),
        ] {
            dropped
                .get_or_create(&label(&[("reason", reason)]))
                .inc_by(n);
        }
    }
}

/// Serves `/metrics` on `listener` until the task is cancelled.
pub async fn serve(listener: TcpListener, ctx: Arc<ControlContext>) {
    loop {
        let Ok((mut stream, peer)) = listener.accept().await else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut req = [0u8; 1024];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read(&mut req),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let line = String::from_utf8_lossy(&req[..n]);
            let (status, body, ctype) =
                if line.starts_with("GET /metrics ") || line.starts_with("GET / ") {
                    (
                        "200 OK",
                        render(
                            &ctx.director,
                            &ctx.clock,
                            &ctx.health,
                            ctx.steering.as_ref(),
                        ),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                } else {
                    ("404 Not Found", "try /metrics\n".to_string(), "text/plain")
                };
            let head = format!(
                "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if let Err(e) = async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            }
            .await
            {
                tracing::debug!("metrics reply to {peer}: {e}");
            }
        });
    }
}

/// Binds the metrics listener.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))
}
