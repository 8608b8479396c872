//! The simulation: one scheduler, one scenario, a virtual clock.
//!
//! Events, in time order: connection arrivals (from the workload), departures (when a
//! server finishes a connection), the end of TIME_WAIT (when a closed connection leaves the
//! table), pool changes and periodic samples. At every arrival the real scheduler from
//! `masq_core::sched` picks a destination from the service's real destination list, the
//! director's own `DestList`: `-a` inserts at index 0 (the kernel's newest-first order),
//! `-e` edits in place, `-d` unlinks, each followed by `dests_changed`.
//!
//! Destination counters move as in the director: a new connection is bound inactive and
//! turns active at once (SYN → SYN_RECV); at its end it turns inactive (TIME_WAIT) and is
//! unbound `time_wait` seconds later. So lc, wlc, sed, nq, ovf, twos and lblc see the
//! ActiveConn/InActConn they would see on a real director, including the weight of
//! TIME_WAIT in the kernel's `active * 256 + inactive` overhead.
//!
//! Server model: a server with `c` cores serves each of its `n` connections at full speed
//! while `n <= c` and at `c / n` of it beyond (processor sharing). A connection needing `w`
//! seconds of work therefore lasts `w` on an idle server and longer on a busy one — which
//! is what makes an unbalanced pool slow, and what makes busy servers hold more active
//! connections. Each server keeps a virtual clock of the work every one of its
//! connections has received; a connection ends when that clock passes its start plus its
//! work, so all of a server's connections are advanced in O(log n) per event.
//!
//! Everything is deterministic for a seed: the workload is drawn before the run, the only
//! randomised scheduler (`twos`) is seeded from it, and the event order is total.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use masq_core::control::{DestKey, DestParams, FwdMethod, SchedFlags};
use masq_core::dest::Destination;
use masq_core::sched::SchedInput;
use masq_core::Timestamp;

use crate::scenario::{ChangeKind, Scenario, ServerSpec, FAIL_REMOVE_AFTER};
use crate::service::Service;
use crate::stats::{self, Average};

/// The virtual service's address.
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);

/// A client whose previous server is unknown or not comparable.
const NONE: u32 = u32::MAX;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig<'a> {
    pub scenario: &'a Scenario,
    /// An ipvsadm scheduler name.
    pub scheduler: &'a str,
    pub flags: SchedFlags,
    pub seed: u64,
    /// How many times the per-server counters are sampled over the run.
    pub samples: usize,
}

/// What happened to the clients at one pool change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeOutcome {
    pub at: f64,
    /// `+s7`, `-s4`, `fail s5`, `-s5 (failed)`.
    pub label: String,
    /// Clients counted (see [`crate::report::MOVED_DEFINITION`]).
    pub compared: u64,
    /// Of those, the ones whose first connection after the change went elsewhere.
    pub moved: u64,
}

/// One server's totals over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOutcome {
    pub spec: ServerSpec,
    pub connections: u64,
    pub bytes: u64,
    /// ActiveConn at each sample, `None` while it is not in the pool.
    pub active: Vec<Option<u32>>,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub scheduler: String,
    pub flags: SchedFlags,
    pub connections: u64,
    /// Arrivals for which the scheduler found no destination.
    pub unscheduled: u64,
    /// Connections cut by a failing server.
    pub broken: u64,
    /// Time average over samples of max / mean ActiveConn across the pool.
    pub max_over_mean: Option<f64>,
    /// Time average of the coefficient of variation of ActiveConn across the pool.
    pub cv_active: Option<f64>,
    /// Same, of ActiveConn per core.
    pub cv_load: Option<f64>,
    /// The highest ActiveConn of any server at any sample.
    pub peak_active: u32,
    /// Response time of each connection, seconds (lower bound for those still open at the
    /// end); sorted.
    pub response: Vec<f64>,
    pub changes: Vec<ChangeOutcome>,
    pub servers: Vec<ServerOutcome>,
    /// Sample times, seconds.
    pub sample_times: Vec<f64>,
    /// Peak heap bytes of the scheduler's state (when the counting allocator is in).
    pub sched_mem_peak: Option<usize>,
    /// Number of `schedule()` calls.
    pub decisions: u64,
    /// Wall-clock time inside `schedule()`, timer cost included.
    pub schedule_time: Duration,
    /// Wall-clock time of the whole run.
    pub wall: Duration,
}

impl RunOutcome {
    /// All clients compared and moved over every change.
    pub fn moved_total(&self) -> (u64, u64) {
        self.changes
            .iter()
            .fold((0, 0), |(c, m), o| (c + o.compared, m + o.moved))
    }
}

/// A pool operation as the director applies it.
#[derive(Debug, Clone)]
enum Op {
    Add(ServerSpec),
    Remove(String),
    /// Weight 0 and connections cut.
    Fail(String),
}

#[derive(Debug)]
struct Server {
    spec: ServerSpec,
    dest: Arc<Destination>,
    in_pool: bool,
    /// Work each of its connections has received, seconds (processor sharing).
    clock: f64,
    clock_at: f64,
    /// (finish tag as f64 bits — non-negative, so bit order is numeric order, arrival).
    jobs: BinaryHeap<Reverse<(u64, u32)>>,
    next_departure: f64,
    connections: u64,
    bytes: u64,
    active: Vec<Option<u32>>,
}

impl Server {
    fn new(spec: ServerSpec, samples_so_far: usize) -> Self {
        let params = DestParams {
            fwd: FwdMethod::Masq,
            weight: spec.weight,
            ..DestParams::default()
        };
        let key = DestKey {
            addr: IpAddr::V4(spec.addr()),
            port: 80,
        };
        Server {
            dest: Arc::new(Destination::new(key, &params)),
            spec,
            in_pool: true,
            clock: 0.0,
            clock_at: 0.0,
            jobs: BinaryHeap::new(),
            next_departure: f64::INFINITY,
            connections: 0,
            bytes: 0,
            active: vec![None; samples_so_far],
        }
    }

    /// Work per second each connection receives now.
    fn rate(&self) -> f64 {
        let n = self.jobs.len() as f64;
        let cores = f64::from(self.spec.cores);
        if n <= cores {
            1.0
        } else {
            cores / n
        }
    }

    fn advance(&mut self, now: f64) {
        if !self.jobs.is_empty() {
            self.clock += self.rate() * (now - self.clock_at);
        }
        self.clock_at = now;
    }

    fn plan_departure(&mut self) {
        self.next_departure = match self.jobs.peek() {
            Some(Reverse((tag, _))) => {
                self.clock_at + (f64::from_bits(*tag) - self.clock).max(0.0) / self.rate()
            }
            None => f64::INFINITY,
        };
    }
}

/// The cost of one `Instant::now()` pair, nanoseconds: subtracted from the time measured
/// around each `schedule()` call.
pub fn timer_overhead_ns() -> f64 {
    (0..5)
        .map(|_| {
            let n = 100_000u32;
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let t0 = Instant::now();
                black_box(());
                total += t0.elapsed();
            }
            total.as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Runs `config`, calling `progress` with the share of simulated time done now and then.
///
/// # Panics
/// If the scheduler name is unknown or the scenario's changes name servers that are not
/// in the pool (both are checked when the command line is read).
pub fn run(config: &RunConfig<'_>, progress: &mut dyn FnMut(f64)) -> RunOutcome {
    let started = Instant::now();
    let scenario = config.scenario;
    let end = scenario.duration;
    let arrivals = &scenario.workload.arrivals;
    let sample_every = end / config.samples.max(1) as f64;

    let mut service = Service::new(config.scheduler, config.seed)
        .expect("scheduler names are checked before the run");
    let mut servers: Vec<Server> = Vec::new();
    for spec in &scenario.servers {
        servers.push(Server::new(spec.clone(), 0));
        let dest = servers.last().expect("just pushed").dest.clone();
        service.add(dest, servers.len() - 1);
    }

    let mut ops: Vec<(f64, Op, String)> = Vec::new();
    for c in &scenario.changes {
        match &c.kind {
            ChangeKind::Add(s) => ops.push((c.at, Op::Add(s.clone()), c.label())),
            ChangeKind::Remove(n) => ops.push((c.at, Op::Remove(n.clone()), c.label())),
            ChangeKind::Fail(n) => {
                ops.push((c.at, Op::Fail(n.clone()), c.label()));
                ops.push((
                    c.at + FAIL_REMOVE_AFTER,
                    Op::Remove(n.clone()),
                    format!("-{n} (failed)"),
                ));
            }
        }
    }
    ops.sort_by(|a, b| a.0.total_cmp(&b.0));

    let clients = scenario.workload.clients;
    let mut last_server = vec![NONE; clients];
    let mut before_change = vec![NONE; clients];
    let mut seen_in_window = vec![0u32; clients];
    let mut window = 0u32;
    let mut changes: Vec<ChangeOutcome> = Vec::new();

    let mut time_wait: VecDeque<(f64, usize)> = VecDeque::new();
    let mut response: Vec<f64> = Vec::with_capacity(arrivals.len());
    let (mut next_arrival, mut next_op, mut next_sample) = (0usize, 0usize, 0usize);
    let mut sample_times = Vec::with_capacity(config.samples);
    let (mut mm, mut cv, mut cv_load) =
        (Average::default(), Average::default(), Average::default());
    let mut peak_active = 0u32;
    let (mut unscheduled, mut broken, mut decisions) = (0u64, 0u64, 0u64);
    let mut schedule_time = Duration::ZERO;
    let mut events = 0u64;
    let mut active_now: Vec<f64> = Vec::new();
    let mut load_now: Vec<f64> = Vec::new();

    loop {
        events += 1;
        if events.is_multiple_of(16_384) {
            let t = arrivals.get(next_arrival).map_or(end, |a| a.at);
            progress(t / end);
        }
        let t_arrival = arrivals.get(next_arrival).map_or(f64::INFINITY, |a| a.at);
        let t_op = ops.get(next_op).map_or(f64::INFINITY, |o| o.0);
        let t_tw = time_wait.front().map_or(f64::INFINITY, |e| e.0);
        let t_sample = if next_sample < config.samples {
            next_sample as f64 * sample_every
        } else {
            f64::INFINITY
        };
        let (departing, t_departure) =
            servers
                .iter()
                .enumerate()
                .fold((usize::MAX, f64::INFINITY), |best, (i, s)| {
                    if s.next_departure < best.1 {
                        (i, s.next_departure)
                    } else {
                        best
                    }
                });
        let now = t_arrival.min(t_op).min(t_tw).min(t_sample).min(t_departure);
        if now >= end {
            break;
        }

        if now == t_sample {
            // The state just before any event at this instant.
            sample_times.push(now);
            active_now.clear();
            load_now.clear();
            for s in &mut servers {
                if !s.in_pool {
                    s.active.push(None);
                    continue;
                }
                let a = s.dest.active_conns();
                s.active.push(Some(a));
                peak_active = peak_active.max(a);
                if s.dest.weight() > 0 {
                    active_now.push(f64::from(a));
                    load_now.push(f64::from(a) / f64::from(s.spec.cores));
                }
            }
            if let (Some(a), Some(l)) = (stats::spread(&active_now), stats::spread(&load_now)) {
                if a.mean > 0.0 {
                    mm.add(a.max / a.mean);
                    cv.add(a.cv);
                    cv_load.add(l.cv);
                }
            }
            next_sample += 1;
        } else if now == t_op {
            let (at, op, label) = ops[next_op].clone();
            next_op += 1;
            let find = |servers: &[Server], name: &str| {
                servers
                    .iter()
                    .position(|s| s.spec.name == name && s.in_pool)
                    .expect("validated: the server is in the pool")
            };
            match op {
                Op::Add(spec) => {
                    servers.push(Server::new(spec, sample_times.len()));
                    let dest = servers.last().expect("just pushed").dest.clone();
                    service.add(dest, servers.len() - 1);
                }
                Op::Remove(name) => {
                    let i = find(&servers, &name);
                    service.remove(i);
                    servers[i].in_pool = false;
                }
                Op::Fail(name) => {
                    let i = find(&servers, &name);
                    service.quiesce(i);
                    let s = &mut servers[i];
                    s.advance(at);
                    broken += s.jobs.len() as u64;
                    for _ in s.jobs.drain() {
                        s.dest.unbind_conn(true);
                    }
                    s.plan_departure();
                }
            }
            // A new window for the moved-clients measure: remember each client's server
            // if it could still serve that client.
            window += 1;
            for (before, &last) in before_change.iter_mut().zip(&last_server) {
                *before = if last != NONE
                    && servers[last as usize].in_pool
                    && servers[last as usize].dest.weight() > 0
                {
                    last
                } else {
                    NONE
                };
            }
            changes.push(ChangeOutcome {
                at,
                label,
                compared: 0,
                moved: 0,
            });
        } else if now == t_departure {
            let s = &mut servers[departing];
            s.advance(now);
            let Reverse((_, job)) = s.jobs.pop().expect("a planned departure has a job");
            response.push(now - arrivals[job as usize].at);
            s.dest.conn_became_active(false);
            if scenario.time_wait > 0.0 {
                time_wait.push_back((now + scenario.time_wait, departing));
            } else {
                s.dest.unbind_conn(false);
            }
            s.plan_departure();
        } else if now == t_tw {
            let (_, server) = time_wait.pop_front().expect("front was there");
            servers[server].dest.unbind_conn(false);
        } else {
            let job = next_arrival;
            let a = &arrivals[job];
            next_arrival += 1;
            let input = SchedInput {
                src: IpAddr::V4(a.addr),
                sport: a.port,
                dst: IpAddr::V4(VIP),
                dport: 80,
                flags: config.flags,
                now: Timestamp((a.at * 1000.0) as u64),
            };
            let pick = service.schedule(&input, &mut schedule_time);
            decisions += 1;
            let chosen = match pick {
                Some(index) => {
                    let sid = service.server_at(index);
                    let s = &mut servers[sid];
                    s.dest.bind_conn();
                    s.dest.conn_became_active(true);
                    s.advance(now);
                    let tag = s.clock + a.work;
                    s.jobs.push(Reverse((tag.to_bits(), job as u32)));
                    s.plan_departure();
                    s.connections += 1;
                    s.bytes += a.bytes;
                    sid as u32
                }
                None => {
                    unscheduled += 1;
                    NONE
                }
            };
            let c = a.client as usize;
            if window > 0 && seen_in_window[c] != window {
                seen_in_window[c] = window;
                if before_change[c] != NONE {
                    let outcome = changes.last_mut().expect("a window has its change");
                    outcome.compared += 1;
                    if chosen != before_change[c] {
                        outcome.moved += 1;
                    }
                }
            }
            if chosen != NONE {
                last_server[c] = chosen;
            }
        }
    }
    progress(1.0);

    // Connections still open at the end count with the time they have had so far.
    for s in &servers {
        for Reverse((_, job)) in s.jobs.iter() {
            response.push(end - arrivals[*job as usize].at);
        }
    }
    for (i, s) in servers.iter().enumerate() {
        let lingering = time_wait.iter().filter(|e| e.1 == i).count();
        debug_assert_eq!(
            s.dest.active_conns() as usize,
            s.jobs.len(),
            "{}",
            s.spec.name
        );
        debug_assert_eq!(s.dest.inact_conns() as usize, lingering, "{}", s.spec.name);
    }
    response.sort_unstable_by(f64::total_cmp);
    RunOutcome {
        scheduler: config.scheduler.to_string(),
        flags: config.flags,
        connections: next_arrival as u64,
        unscheduled,
        broken,
        max_over_mean: mm.get(),
        cv_active: cv.get(),
        cv_load: cv_load.get(),
        peak_active,
        response,
        changes,
        servers: servers
            .into_iter()
            .map(|s| ServerOutcome {
                spec: s.spec,
                connections: s.connections,
                bytes: s.bytes,
                active: s.active,
            })
            .collect(),
        sample_times,
        sched_mem_peak: service.sched_mem_peak(),
        decisions,
        schedule_time,
        wall: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{parse_changes, parse_servers, Preset};
    use crate::workload::Synthetic;

    fn scenario(servers: &str, changes: &str, rate: f64, duration: f64) -> Scenario {
        let servers = parse_servers(servers).unwrap();
        let changes = parse_changes(changes, &servers, duration).unwrap();
        Scenario {
            name: "test".into(),
            workload: Synthetic {
                rate,
                duration,
                clients: 2000,
                client_skew: 0.5,
                mean_work: 0.02,
            }
            .generate(3),
            servers,
            changes,
            duration,
            time_wait: 120.0,
        }
    }

    fn run_one(s: &Scenario, name: &str, flags: u8) -> RunOutcome {
        run(
            &RunConfig {
                scenario: s,
                scheduler: name,
                flags: SchedFlags(flags),
                seed: 1,
                samples: 100,
            },
            &mut |_| {},
        )
    }

    #[test]
    fn sim_wrr_shares_follow_the_weights() {
        let s = scenario("8:4,8:2,8:1", "none", 500.0, 20.0);
        let out = run_one(&s, "wrr", 0);
        assert_eq!(out.unscheduled, 0);
        let total: u64 = out.servers.iter().map(|s| s.connections).sum();
        assert_eq!(total, out.connections);
        for (server, want) in out.servers.iter().zip([4.0 / 7.0, 2.0 / 7.0, 1.0 / 7.0]) {
            let share = server.connections as f64 / total as f64;
            assert!(
                (share - want).abs() < 0.001,
                "{}: {share}",
                server.spec.name
            );
        }
    }

    #[test]
    fn sim_every_connection_is_accounted_for_once() {
        // Debug builds also check, at the end of run(), that each destination's ActiveConn
        // and InActConn are exactly the connections the model still has on it and in
        // TIME_WAIT, whatever the pool went through.
        let s = scenario("4,4,2", "add:2@5,fail:s1@10,remove:s2@15", 400.0, 20.0);
        for name in ["wlc", "lc", "rr", "mh"] {
            let out = run_one(&s, name, 0);
            assert!(out.broken > 0, "{name}");
            assert_eq!(out.changes.len(), 4, "{name}");
            assert_eq!(
                out.response.len() as u64 + out.broken + out.unscheduled,
                out.connections
            );
        }
    }

    #[test]
    fn sim_maglev_moves_few_clients_when_a_server_goes() {
        let s = scenario("4,4,4,4,4,4", "remove:s3@10", 600.0, 20.0);
        let mh = run_one(&s, "mh", 0);
        let (compared, moved) = mh.moved_total();
        assert!(compared > 1000, "{compared}");
        assert!(
            (moved as f64) < 0.05 * compared as f64,
            "mh moved {moved}/{compared}"
        );
        let rr = run_one(&s, "rr", 0);
        let (compared, moved) = rr.moved_total();
        assert!(
            (moved as f64) > 0.6 * compared as f64,
            "rr moved {moved}/{compared}"
        );
    }

    #[test]
    fn sim_sh_without_fallback_refuses_a_quiesced_servers_clients() {
        let s = scenario("4,4,4,4", "fail:s2@10", 400.0, 20.0);
        let plain = run_one(&s, "sh", 0);
        assert!(plain.unscheduled > 0);
        let fallback = run_one(&s, "sh", SchedFlags::FLAG1);
        assert_eq!(fallback.unscheduled, 0);
    }

    #[test]
    fn sim_least_connection_balances_better_than_round_robin_on_mixed_servers() {
        let s = Preset::Hetero.scenario(2, 30.0, None);
        let rr = run_one(&s, "rr", 0);
        let wlc = run_one(&s, "wlc", 0);
        assert!(
            wlc.cv_load.unwrap() < rr.cv_load.unwrap(),
            "wlc {:?} rr {:?}",
            wlc.cv_load,
            rr.cv_load
        );
    }
}
