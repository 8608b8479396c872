//! `masqd --metrics ADDR`: the director's counters for Prometheus.
//!
//! Every scrape builds a fresh registry from one consistent read of the director (the
//! counters live in the core; nothing here keeps state). Names follow Prometheus
//! conventions: `masq_` prefix, base units, `_total` on counters. Served read-only by
//! `http_server` (with its limits and `Host` rule); bind it to loopback unless told
//! otherwise.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::Result;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use masq_core::control::{Control, ServiceKey};
use masq_core::sync::SyncCounters;
use masq_core::{Director, Side};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::clock::Clock;
use crate::context::ControlContext;
use crate::health::{HealthMap, LocalFailures};
use crate::http_server::{full, text, Body, Counters, HostName, Limits, Server};
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
/// counters too, and those of the HTTP endpoints in `http`.
pub fn render(
    director: &Director,
    clock: &Clock,
    health: &HealthMap,
    local_failures: &LocalFailures,
    xdp: Option<&XdpSteering>,
    http: &[Arc<Counters>],
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
        ("template_evicted", totals.evicted_templates),
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
    let local = family!(
        "masq_health_local_failures",
        "Health probes that failed for a reason of the director's own (not held against the real server), by errno",
        Counter
    );
    for (reason, n) in local_failures.counts() {
        local
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc_by(n);
    }
    render_tables(&mut registry, director);
    render_sync(&mut registry, &director.sync_counters);
    if let Some(xdp) = xdp {
        render_xdp(&mut registry, xdp);
    }
    render_http(&mut registry, http);
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// The sync daemons: messages and connections by role and outcome, and a backup's
/// refusals by reason.
fn render_sync(registry: &mut Registry, sync: &SyncCounters) {
    let mut family = |name: &str, help: &str| {
        let f = Family::<Labels, Counter>::default();
        registry.register(name, help, f.clone());
        f
    };
    let messages = family(
        "masq_sync_messages",
        "Sync messages a master sent (or failed to) and a backup applied (or ignored)",
    );
    let conns = family(
        "masq_sync_connections",
        "Connections in sync messages: sent or dropped by a master, created or updated by a backup",
    );
    let refused_messages = family(
        "masq_sync_refused_messages",
        "Sync messages a backup refused whole, by reason",
    );
    let refused_conns = family(
        "masq_sync_refused_connections",
        "Connections of readable sync messages a backup did not apply, by reason",
    );
    let labels = |pairs: [(&str, &str); 2]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let refused: u64 = sync.messages_refused().map(|(_, n)| n).sum();
    for (role, outcome, n) in [
        ("master", "sent", sync.messages_sent.load(Relaxed)),
        (
            "master",
            "send_failed",
            sync.messages_send_failed.load(Relaxed),
        ),
        ("backup", "applied", sync.messages_applied.load(Relaxed)),
        (
            "backup",
            "other_syncid",
            sync.messages_other_syncid.load(Relaxed),
        ),
        ("backup", "refused", refused),
    ] {
        messages
            .get_or_create(&labels([("role", role), ("outcome", outcome)]))
            .inc_by(n);
    }
    let refused: u64 = sync.conns_refused().map(|(_, n)| n).sum();
    for (role, outcome, n) in [
        ("master", "sent", sync.conns_sent.load(Relaxed)),
        ("master", "queue_full", sync.conns_queue_full.load(Relaxed)),
        ("backup", "created", sync.conns_created.load(Relaxed)),
        ("backup", "updated", sync.conns_updated.load(Relaxed)),
        ("backup", "refused", refused),
    ] {
        conns
            .get_or_create(&labels([("role", role), ("outcome", outcome)]))
            .inc_by(n);
    }
    for (reason, n) in sync.messages_refused() {
        refused_messages
            .get_or_create(&vec![("reason".into(), reason.name().into())])
            .inc_by(n);
    }
    for (reason, n) in sync.conns_refused() {
        refused_conns
            .get_or_create(&vec![("reason".into(), reason.name().into())])
            .inc_by(n);
    }
}

/// The tables a packet can grow: their sizes and bounds, and what each refused or shed to
/// stay within them.
fn render_tables(registry: &mut Registry, director: &Director) {
    let entries = Family::<Labels, Gauge>::default();
    registry.register(
        "masq_table_entries",
        "Entries in a bounded table (connections and templates share --max-conns)",
        entries.clone(),
    );
    let bound = Family::<Labels, Gauge>::default();
    registry.register(
        "masq_table_bound",
        "Most entries a table holds",
        bound.clone(),
    );
    let shed = Family::<Labels, Counter>::default();
    registry.register(
        "masq_table_shed",
        "Entries a full table gave up to make room, or refused, by table and reason",
        shed.clone(),
    );
    let conflicts = Family::<Labels, Counter>::default();
    registry.register(
        "masq_neighbour_conflicts",
        "ARP claims by a second MAC for an address whose first host still answers (ignored)",
        conflicts.clone(),
    );
    let label = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let max_conns = director.config().max_conns as i64;
    for (table, n) in [
        ("connections", director.connection_count()),
        ("templates", director.template_count()),
    ] {
        entries
            .get_or_create(&label(&[("table", table)]))
            .set(n as i64);
        bound
            .get_or_create(&label(&[("table", table)]))
            .set(max_conns);
    }
    let fragments = label(&[("table", "fragments")]);
    entries
        .get_or_create(&fragments)
        .set(director.fragment_count() as i64);
    bound
        .get_or_create(&fragments)
        .set(masq_core::frag::MAX_ENTRIES as i64);
    let frag = director.fragment_counters();
    for (reason, n) in [
        ("client_at_its_share", &frag.refused_per_client),
        ("oldest_forgotten", &frag.shed_oldest),
    ] {
        shed.get_or_create(&label(&[("table", "fragments"), ("reason", reason)]))
            .inc_by(n.load(Relaxed));
    }
    for side in [Side::Vip, Side::Dip] {
        let table = director.neighbour_table(side);
        let l = label(&[("table", "neighbours"), ("side", side.name())]);
        entries.get_or_create(&l).set(table.len() as i64);
        bound.get_or_create(&l).set(table.capacity() as i64);
        for (reason, n) in [
            ("shed", &table.counters.shed),
            ("refused", &table.counters.refused),
        ] {
            let l = label(&[
                ("table", "neighbours"),
                ("side", side.name()),
                ("reason", reason),
            ]);
            shed.get_or_create(&l).inc_by(n.load(Relaxed));
        }
        conflicts
            .get_or_create(&label(&[("side", side.name())]))
            .inc_by(table.counters.conflicts.load(Relaxed));
    }
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

/// What the HTTP endpoints' servers saw: connections, deadlines, refusals.
fn render_http(registry: &mut Registry, http: &[Arc<Counters>]) {
    let endpoint = |c: &Counters| -> Labels { vec![("endpoint".into(), c.endpoint.into())] };
    let mut counter = |name: &str, help: &str, read: fn(&Counters) -> &AtomicU64| {
        let family = Family::<Labels, Counter>::default();
        registry.register(name, help, family.clone());
        for c in http {
            family
                .get_or_create(&endpoint(c))
                .inc_by(read(c).load(Relaxed));
        }
    };
    counter(
        "masq_http_connections",
        "Connections accepted by an HTTP endpoint (--metrics, --web)",
        |c| &c.accepted,
    );
    counter(
        "masq_http_accept_errors",
        "Failed accepts on an HTTP endpoint (out of descriptors or buffers)",
        |c| &c.accept_errors,
    );
    counter(
        "masq_http_timeouts",
        "HTTP connections closed at a deadline (request head, response, stalled stream)",
        |c| &c.timed_out,
    );
    let open = Family::<Labels, Gauge>::default();
    registry.register(
        "masq_http_open_connections",
        "Connections an HTTP endpoint serves now",
        open.clone(),
    );
    let refused = Family::<Labels, Counter>::default();
    registry.register(
        "masq_http_refused_requests",
        "HTTP requests refused, by reason (malformed_host: none or a garbled one; foreign_host: a name this server does not answer to, as DNS rebinding sends; bad_token: a change without the admin token)",
        refused.clone(),
    );
    for c in http {
        open.get_or_create(&endpoint(c))
            .set(i64::try_from(c.open.load(Relaxed)).unwrap_or(i64::MAX));
        for (reason, n) in [
            ("malformed_host", &c.malformed_host),
            ("foreign_host", &c.foreign_host),
            ("bad_token", &c.bad_token),
        ] {
            refused
                .get_or_create(&with(endpoint(c), &[("reason", reason.into())]))
                .inc_by(n.load(Relaxed));
        }
    }
}

/// The metrics endpoint, bound and ready to serve.
pub struct Endpoint {
    server: Server,
}

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Endpoint {
    /// Binds the metrics listener on `addr`, answering to the `Host` names `allowed`
    /// adds.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: SocketAddr, allowed: &[HostName]) -> Result<Endpoint> {
        let server = Server::bind(
            addr,
            "metrics",
            "metrics endpoint",
            Limits::DEFAULT,
            allowed,
        )
        .await?;
        tracing::info!("metrics at http://{addr}/metrics");
        Ok(Endpoint { server })
    }

    /// Serves `/metrics` until the task is cancelled; with the counters of the other HTTP
    /// endpoints in `others`.
    pub async fn serve(self, ctx: Arc<ControlContext>, others: Vec<Arc<Counters>>) {
        let http: Arc<[Arc<Counters>]> = std::iter::once(self.server.counters())
            .chain(others)
            .collect();
        self.server
            .serve(move |request| std::future::ready(respond(&request, &ctx, &http)))
            .await;
    }
}

fn respond(
    request: &Request<Incoming>,
    ctx: &ControlContext,
    http: &[Arc<Counters>],
) -> Response<Body> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics" | "/") => {
            let body = render(
                &ctx.director,
                &ctx.clock,
                &ctx.health,
                &ctx.health_local_failures,
                ctx.steering.as_ref(),
                http,
            );
            full(StatusCode::OK, OPENMETRICS, body)
        }
        (_, "/metrics" | "/") => {
            let mut refused = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
            refused
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            refused
        }
        _ => text(StatusCode::NOT_FOUND, "try /metrics\n"),
    }
}
