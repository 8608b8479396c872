//! Cost of one scheduling decision, per scheduler, at 2, 16, 256 and 4096 destinations.
//!
//! Each benchmark is one `schedule()` call on a service whose destinations look like a
//! busy real pool — added one by one through the director's `DestList`, newest first, as
//! `ipvsadm -a` adds them — followed by the bookkeeping the director does for the new
//! connection:
//! - weights drawn from {10, 20, 50, 100}, ActiveConn uniform in 0..=1.2×weight (so `ovf`
//!   and lblc's overload rule see some servers over their weight) and InActConn in
//!   0..=4×weight;
//! - the state moves between iterations: the picked destination gets a connection (bound,
//!   then active, as a SYN does) and the connection picked 4096 decisions earlier ends, so
//!   the counters lc/wlc/sed/nq/ovf/twos/lblc read keep changing around a steady level;
//! - every iteration has a new client address and port and one of 10,000 destination
//!   addresses (xorshift, no allocation), so sh and mh hash a new key each time and
//!   dh/lblc/lblcr (which key on the destination address) walk a realistic table.
//!
//! `baseline` is the same loop with a trivial pick (`random & (n - 1)`): the cost of the
//! loop and the bookkeeping, to subtract from the others.
//!
//! `mh` at 4096 destinations is built with a 8191-slot table (`IP_VS_MH_TAB_INDEX` 13): the
//! default 4093 slots cannot hold more than 4093 servers, and the kernel then refuses to
//! build the table. `sh` and `dh` have 256 buckets, so at 4096 only 256 servers get one —
//! as in the kernel.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use masq::core::control::{DestKey, DestParams, FwdMethod, SchedFlags};
use masq::core::dest::Destination;
use masq::core::dest_list::DestList;
use masq::core::sched::{
    self, least, mh::MaglevHashing, twos::PowerOfTwoChoices, SchedInput, Scheduler,
};
use masq::core::Timestamp;

const SIZES: [usize; 4] = [2, 16, 256, 4096];
/// Sizes of the linear-against-indexed comparison.
const LEAST_SIZES: [usize; 4] = [8, 64, 512, 4096];
const LEAST_NAMES: [&str; 5] = ["lc", "wlc", "sed", "nq", "ovf"];
const WEIGHTS: [i32; 4] = [10, 20, 50, 100];
/// Connections kept open: each decision opens one and ends the one from this many
/// decisions ago.
const LIVE: usize = 4096;
/// Distinct destination addresses (the keys of dh, lblc and lblcr).
const DST_ADDRS: u32 = 10_000;

/// xorshift32: a new client per iteration without touching the allocator.
struct Xorshift(u32);

impl Xorshift {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// `n` destinations added to `scheduler`'s service, with weights and counters drawn from
/// `rng`.
fn pool(n: usize, rng: &mut Xorshift, scheduler: &mut dyn Scheduler) -> DestList {
    let mut dests = DestList::new();
    for i in 0..n {
        let weight = WEIGHTS[rng.next() as usize % WEIGHTS.len()];
        let dest = Destination::new(
            DestKey {
                addr: IpAddr::V4(Ipv4Addr::from(0xac10_0000 + i as u32 + 1)),
                port: 80,
            },
            &DestParams {
                fwd: FwdMethod::Masq,
                weight,
                ..DestParams::default()
            },
        );
        let active = rng.next() % (weight as u32 * 6 / 5 + 1);
        let inactive = rng.next() % (weight as u32 * 4 + 1);
        dest.set_conns_for_test(active, inactive);
        dests.add(Arc::new(dest), scheduler);
    }
    dests
}

/// The scheduler `name` for a service of `n` destinations, before they are added.
fn scheduler(name: &str, n: usize) -> Box<dyn Scheduler> {
    match name {
        "mh" if n > 4093 => Box::new(
            MaglevHashing::with_table_size(&[], 8191).expect("8191 is a kernel table size"),
        ),
        // Seeded, so two runs of the bench make the same choices.
        "twos" => Box::new(PowerOfTwoChoices::with_seed(1)),
        _ => sched::create(name, &[]).expect("a known scheduler"),
    }
}

/// A new connection to the service's VIP, from nowhere yet.
fn to_the_vip() -> SchedInput {
    SchedInput {
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        sport: 0,
        dst: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 10)),
        dport: 80,
        flags: SchedFlags::default(),
        now: Timestamp::ZERO,
    }
}

/// One service under load: its destinations, the scheduler (or the baseline's trivial
/// pick), the ring of open connections.
struct Bench {
    dests: DestList,
    sched: Option<Box<dyn Scheduler>>,
    rng: Xorshift,
    ring: Vec<u32>,
    pos: usize,
    ticks: u64,
    input: SchedInput,
}

impl Bench {
    fn new(name: Option<&str>, n: usize) -> Self {
        // The baseline's list is built under `none`, which keeps no state.
        let sched = scheduler(name.unwrap_or("none"), n);
        Bench::with(sched, name.is_some(), n)
    }

    /// A bench of `n` destinations added to `sched`; `decide` uses it when `picks`, else
    /// the baseline's trivial pick.
    fn with(mut sched: Box<dyn Scheduler>, picks: bool, n: usize) -> Self {
        let mut rng = Xorshift(0x9E37_79B9);
        let dests = pool(n, &mut rng, sched.as_mut());
        let sched = picks.then_some(sched);
        let mut bench = Bench {
            dests,
            sched,
            rng,
            ring: vec![u32::MAX; LIVE],
            pos: 0,
            ticks: 0,
            input: to_the_vip(),
        };
        // Fill the ring, and let lblc/lblcr meet every destination address once, so the
        // measured loop runs in a steady state and allocates nothing.
        for _ in 0..LIVE.max(DST_ADDRS as usize) {
            bench.decide();
        }
        bench
    }

    fn decide(&mut self) -> Option<usize> {
        let x = self.rng.next();
        self.input.src = IpAddr::V4(Ipv4Addr::from(x));
        self.input.sport = (x >> 16) as u16;
        self.input.dst = IpAddr::V4(Ipv4Addr::from(0x0a80_0000 + x % DST_ADDRS));
        // Time moves 1 ms every 64 decisions: lblc/lblcr's collection timer ticks now and
        // then, as it would.
        self.ticks += 1;
        self.input.now = Timestamp(self.ticks / 64);
        let pick = match &mut self.sched {
            Some(s) => s.schedule(&self.dests, black_box(&self.input)),
            // The sizes are powers of two: a mask, not a division, keeps the baseline cheap.
            None => Some(x as usize & (self.dests.len() - 1)),
        };
        if let Some(i) = pick {
            self.dests[i].bind_conn();
            self.dests[i].conn_became_active(true);
        }
        let ended = std::mem::replace(
            &mut self.ring[self.pos],
            pick.map_or(u32::MAX, |i| i as u32),
        );
        if ended != u32::MAX {
            self.dests[ended as usize].unbind_conn(true);
        }
        self.pos = (self.pos + 1) % LIVE;
        pick
    }
}

fn group(c: &mut Criterion, label: &str, name: Option<&str>) {
    let mut g = c.benchmark_group(format!("sched/{label}"));
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut bench = Bench::new(name, n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(bench.decide()))
        });
    }
    g.finish();
}

/// Linear walk against index for the least-load scheduler `name`.
fn least_group(c: &mut Criterion, name: &str) {
    let mut g = c.benchmark_group(format!("least/{name}"));
    g.throughput(Throughput::Elements(1));
    for n in LEAST_SIZES {
        for (way, index_from) in [("linear", usize::MAX), ("indexed", 0)] {
            let sched = least::create(name, &[], index_from).expect("a least-load scheduler");
            let mut bench = Bench::with(sched, true, n);
            g.bench_with_input(BenchmarkId::new(way, n), &n, |b, _| {
                b.iter(|| black_box(bench.decide()))
            });
        }
    }
    g.finish();
}

/// One connection's counter changes and a pick, on destinations watched by an index or
/// not.
fn lifecycle_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("dest/lifecycle");
    g.throughput(Throughput::Elements(1));
    for (label, scheduler) in [("unwatched", "none"), ("watched", "wlc")] {
        let mut rng = Xorshift(0x9E37_79B9);
        let mut sched = sched::create(scheduler, &[]).expect("a known scheduler");
        // 4096 destinations: an index, whatever INDEX_FROM is.
        let dests = pool(4096, &mut rng, sched.as_mut());
        let mut k = 0;
        let mut input = to_the_vip();
        g.bench_function(label, |b| {
            b.iter(|| {
                let dest = &dests[k & 4095];
                k += 1;
                dest.bind_conn();
                dest.conn_became_active(true);
                dest.unbind_conn(true);
                input.sport = k as u16;
                black_box(sched.schedule(&dests, black_box(&input)))
            })
        });
    }
    g.finish();
}

fn schedulers(c: &mut Criterion) {
    group(c, "baseline", None);
    for &name in sched::SCHEDULER_NAMES {
        // `none` never schedules: nothing to measure.
        if name != "none" {
            group(c, name, Some(name));
        }
    }
    for name in LEAST_NAMES {
        least_group(c, name);
    }
    lifecycle_group(c);
}

criterion_group! {
    name = benches;
    // Two shared cores: short, few samples; the whole file runs in about four minutes.
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    targets = schedulers
}
criterion_main!(benches);
