//! The connection table (`masq_core::conn::ConnTable`) at 1k, 100k and 1M entries:
//! - `conntable/insert/N`: one `Conn::new` + `insert` into a table holding about N entries
//!   (the entries added while measuring are removed between rounds, untimed, so the table
//!   stays between N and 1.1 N);
//! - `conntable/lookup_inbound/N`, `conntable/lookup_outbound/N`: finding an existing entry
//!   from a client-to-VIP packet and from a real-server-to-client packet;
//! - memory: a counting global allocator measures the heap the table takes per entry
//!   (the `Conn` in its `Arc` plus both dashmap entries), printed as
//!   `conntable/N: ... bytes per connection` when each size is built.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use masq::core::conn::{Conn, ConnTable, FlowKey, Inserted};
use masq::core::control::{DestKey, DestParams, FwdMethod, Protocol, ServiceKey, ServiceParams};
use masq::core::dest::Destination;
use masq::core::sched;
use masq::core::service::VirtualService;
use masq::core::Timestamp;

/// Live heap bytes.
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; the counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        // SAFETY: same layout, forwarded to System.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        // SAFETY: same layout, forwarded to System.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` came from System with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);

/// Client `i`: 10.x.y.z from the high bits, source port from the low 14.
fn client(i: u32) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(0x0a00_0000 | (i >> 14)),
        1024 + (i & 0x3fff) as u16,
    )
}

fn flow(i: u32) -> FlowKey {
    FlowKey {
        protocol: 6,
        src: client(i),
        dst: SocketAddrV4::new(VIP, 80),
    }
}

/// One service with two real servers.
struct Fixture {
    service: Arc<VirtualService>,
    dests: Vec<Arc<Destination>>,
}

impl Fixture {
    fn new() -> Self {
        let service = Arc::new(VirtualService::new(
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: IpAddr::V4(VIP),
                port: 80,
            },
            ServiceParams::default(),
            sched::create("wlc", &[]).expect("wlc exists"),
        ));
        let dests = [7u8, 9]
            .iter()
            .map(|&h| {
                Arc::new(Destination::new(
                    DestKey {
                        addr: IpAddr::V4(Ipv4Addr::new(192, 168, 100, h)),
                        port: 80,
                    },
                    &DestParams {
                        fwd: FwdMethod::Masq,
                        ..DestParams::default()
                    },
                ))
            })
            .collect();
        Fixture { service, dests }
    }

    fn conn(&self, i: u32) -> Conn {
        let dest = &self.dests[i as usize % self.dests.len()];
        let daddr = SocketAddrV4::new(dest.ipv4().expect("IPv4"), 80);
        Conn::new(
            flow(i),
            daddr,
            self.service.clone(),
            dest.clone(),
            None,
            Timestamp::from_secs(1),
        )
    }

    /// A table of `n` entries, and the heap bytes it took.
    fn table(&self, n: usize) -> (ConnTable, usize) {
        let before = LIVE.load(Relaxed);
        let table = ConnTable::default();
        for i in 0..n as u32 {
            assert!(matches!(table.insert(self.conn(i)), Inserted::New(_)));
        }
        (table, LIVE.load(Relaxed) - before)
    }
}

fn conntable(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut g = c.benchmark_group("conntable");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        let (table, heap) = fx.table(n);
        println!(
            "conntable/{n}: {n} entries, {:.1} MiB heap, {:.0} bytes per connection \
             (size_of Conn {} B, FlowKey {} B)",
            heap as f64 / f64::from(1 << 20),
            heap as f64 / n as f64,
            std::mem::size_of::<Conn>(),
            std::mem::size_of::<FlowKey>(),
        );

        let mut next = n as u32;
        let chunk = (n / 10).max(100);
        g.bench_with_input(BenchmarkId::new("insert", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                let mut fresh: Vec<Conn> = Vec::with_capacity(chunk);
                let mut inserted: Vec<Arc<Conn>> = Vec::with_capacity(chunk);
                while left > 0 {
                    let k = left.min(chunk as u64) as u32;
                    fresh.extend((next..next + k).map(|i| fx.conn(i)));
                    next += k;
                    let t0 = Instant::now();
                    for conn in fresh.drain(..) {
                        if let Inserted::New(c) = table.insert(conn) {
                            inserted.push(c);
                        }
                    }
                    total += t0.elapsed();
                    for conn in inserted.drain(..) {
                        table.remove(&conn);
                    }
                    left -= u64::from(k);
                }
                total
            })
        });

        let mut x = 0x2545_f491u32;
        let mut pick = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % n as u32
        };
        let outbound: Vec<FlowKey> = (0..n as u32)
            .map(|i| {
                table
                    .lookup_inbound(&flow(i))
                    .expect("present")
                    .outbound_key()
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("lookup_inbound", n), &n, |b, _| {
            b.iter(|| black_box(table.lookup_inbound(&flow(pick()))))
        });
        g.bench_with_input(BenchmarkId::new("lookup_outbound", n), &n, |b, _| {
            b.iter(|| black_box(table.lookup_outbound(&outbound[pick() as usize])))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    targets = conntable
}
criterion_main!(benches);
