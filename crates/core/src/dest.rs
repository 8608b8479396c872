//! A destination (real server) as the data path and the schedulers see it.
//!
//! Its fields are atomics because three parties touch it at once: workers bind and unbind
//! connections (ActiveConn/InActConn), schedulers read weights and counters, and the
//! control plane edits weights and thresholds. A connection holds an `Arc<Destination>`, so a
//! deleted destination lives on with its counters while connections still reference it —
//! which is how the kernel's "trash" brings old counters back when it is re-added.
//!
//! What the least-load schedulers read — ActiveConn, InActConn, the weight, OVERLOAD — is
//! written with `SeqCst`, and each change ends by telling the scheduler's index, if one
//! watches this destination (`sched/least/feed.rs` says why that keeps every pick exact).
//! On x86 a `SeqCst` read-modify-write or load costs what a `Relaxed` one does.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::control::{DestKey, DestParams, FwdMethod, TunnelKind};
use crate::sched::least::feed::{ChangeFeed, Watch};
use crate::stats::Stats;

/// A real server of one service.
#[derive(Debug)]
pub struct Destination {
    /// Address and port the connections are sent to.
    pub key: DestKey,
    weight: AtomicI32,
    last_weight: AtomicI32,
    u_threshold: AtomicU32,
    l_threshold: AtomicU32,
    active: AtomicU32,
    inactive: AtomicU32,
    persist: AtomicU32,
    overloaded: AtomicBool,
    available: AtomicBool,
    /// Forwarding method (`-m`, `-g`, `-i`), as [`fwd_index`]: a new connection reads it
    /// without a lock and keeps it, as the kernel's connection keeps its flags.
    fwd: AtomicU8,
    /// Tunnel settings, only read by the control plane.
    tunnel: Mutex<TunnelKind>,
    /// Traffic counters and rates.
    pub stats: Stats,
    /// Health signals for diagnosis; see [`DestHealth::unanswered`].
    pub health: DestHealth,
    /// The least-load index that wants to hear of this destination's changes, if any.
    watch: ArcSwapOption<Watch>,
    /// Whether `watch` was ever set: one plain load spares the destinations that no index
    /// ever watched (under every scheduler but the least-load ones) the cost of loading
    /// `watch`. Never cleared: an index may let go of a destination on another thread
    /// while a new one takes it (a service dropped with its last snapshot, its destination
    /// back from the trash in a new one), and only `watch`'s compare-and-swap settles that.
    ever_watched: AtomicBool,
}

/// The forwarding methods by their index in [`Destination`]'s atomic.
const FWD_METHODS: [FwdMethod; 4] = [
    FwdMethod::Masq,
    FwdMethod::Local,
    FwdMethod::Tunnel,
    FwdMethod::Route,
];

/// The index of `fwd` in [`FWD_METHODS`].
fn fwd_index(fwd: FwdMethod) -> u8 {
    match fwd {
        FwdMethod::Masq => 0,
        FwdMethod::Local => 1,
        FwdMethod::Tunnel => 2,
        FwdMethod::Route => 3,
    }
}

/// What the data path notices about a real server's behaviour, for `masqadm --check`.
#[derive(Debug, Default)]
pub struct DestHealth {
    /// Connections sent to it since the last packet it sent back.
    unanswered: AtomicU32,
    /// When the oldest of those was sent (ms of the director's clock).
    oldest_unanswered_ms: AtomicU64,
    /// Connection attempts it refused with a RST.
    refused: AtomicU64,
    /// When it last refused one (ms of the director's clock).
    last_refused_ms: AtomicU64,
}

impl DestHealth {
    /// A new connection was sent to the server at `now_ms`.
    pub fn sent_connection(&self, now_ms: u64) {
        if self.unanswered.fetch_add(1, Relaxed) == 0 {
            self.oldest_unanswered_ms.store(now_ms, Relaxed);
        }
    }

    /// The server sent a packet back through the director.
    pub fn answered(&self) {
        // Only write when needed: this runs for every packet from the server.
        if self.unanswered.load(Relaxed) != 0 {
            self.unanswered.store(0, Relaxed);
        }
    }

    /// The server refused a connection attempt (RST while opening).
    pub fn refused(&self, now_ms: u64) {
        self.refused.fetch_add(1, Relaxed);
        self.last_refused_ms.store(now_ms, Relaxed);
    }

    /// Connections sent since the server last answered, and when the oldest of them
    /// was sent.
    pub fn unanswered(&self) -> (u32, u64) {
        (
            self.unanswered.load(Relaxed),
            self.oldest_unanswered_ms.load(Relaxed),
        )
    }

    /// Refused attempts so far and when the last was.
    pub fn refusals(&self) -> (u64, u64) {
        (
            self.refused.load(Relaxed),
            self.last_refused_ms.load(Relaxed),
        )
    }
}

impl Destination {
    /// A destination as `-a` creates it: available, with no connections.
    pub fn new(key: DestKey, params: &DestParams) -> Self {
        Destination {
            key,
            weight: AtomicI32::new(params.weight),
            last_weight: AtomicI32::new(params.weight),
            u_threshold: AtomicU32::new(params.u_threshold),
            l_threshold: AtomicU32::new(params.l_threshold),
            active: AtomicU32::new(0),
            inactive: AtomicU32::new(0),
            persist: AtomicU32::new(0),
            overloaded: AtomicBool::new(false),
            available: AtomicBool::new(true),
            fwd: AtomicU8::new(fwd_index(params.fwd)),
            tunnel: Mutex::new(params.tunnel),
            stats: Stats::default(),
            health: DestHealth::default(),
            watch: ArcSwapOption::empty(),
            ever_watched: AtomicBool::new(false),
        }
    }

    /// A test helper: an IPv4 destination on `port` with `weight`, NAT.
    pub fn for_test(addr: Ipv4Addr, port: u16, weight: i32) -> Self {
        let params = DestParams {
            fwd: FwdMethod::Masq,
            weight,
            ..DestParams::default()
        };
        Destination::new(
            DestKey {
                addr: IpAddr::V4(addr),
                port,
            },
            &params,
        )
    }

    /// The IPv4 address, if it is one (the data path is IPv4 only).
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        match self.key.addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    /// Current weight (`-w`); 0 means quiesced.
    pub fn weight(&self) -> i32 {
        self.weight.load(SeqCst)
    }

    /// The latest non-zero weight (kernel `last_weight`, used by `mh`).
    pub fn last_weight(&self) -> i32 {
        self.last_weight.load(Relaxed)
    }

    /// ActiveConn.
    pub fn active_conns(&self) -> u32 {
        self.active.load(SeqCst)
    }

    /// InActConn.
    pub fn inact_conns(&self) -> u32 {
        self.inactive.load(SeqCst)
    }

    /// PersistConn: persistence templates pointing here.
    pub fn persist_conns(&self) -> u32 {
        self.persist.load(Relaxed)
    }

    /// The kernel's `ip_vs_dest_conn_overhead`: active × 256 + inactive.
    pub fn overhead(&self) -> i64 {
        ((self.active_conns() as i64) << 8) + self.inact_conns() as i64
    }

    /// The OVERLOAD flag: set when connections reach the upper threshold.
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(SeqCst)
    }

    /// Whether the destination is still linked in its service (cleared on delete).
    pub fn is_available(&self) -> bool {
        self.available.load(Relaxed)
    }

    /// How new connections to it are forwarded.
    pub fn forwarding(&self) -> FwdMethod {
        FWD_METHODS[usize::from(self.fwd.load(Relaxed))]
    }

    /// Upper and lower thresholds (`-x`, `-y`).
    pub fn thresholds(&self) -> (u32, u32) {
        (
            self.u_threshold.load(Relaxed),
            self.l_threshold.load(Relaxed),
        )
    }

    /// The parameters as `-L`/`-S` show them.
    pub fn params(&self) -> DestParams {
        let tunnel = *self.tunnel.lock().unwrap_or_else(|e| e.into_inner());
        let (u_threshold, l_threshold) = self.thresholds();
        DestParams {
            fwd: self.forwarding(),
            weight: self.weight(),
            u_threshold,
            l_threshold,
            tunnel,
        }
    }

    /// Applies `-e` (or a re-add): weight, thresholds, method. As the kernel does, the
    /// last non-zero weight is only updated by a non-zero weight, and raising or clearing
    /// the upper threshold clears OVERLOAD at once.
    pub fn update(&self, params: &DestParams) {
        let old_upper = self.u_threshold.load(Relaxed);
        self.weight.store(params.weight, SeqCst);
        if params.weight != 0 {
            self.last_weight.store(params.weight, Relaxed);
        }
        self.u_threshold.store(params.u_threshold, Relaxed);
        self.l_threshold.store(params.l_threshold, Relaxed);
        if params.u_threshold == 0 || params.u_threshold > old_upper {
            self.overloaded.store(false, SeqCst);
        }
        self.fwd.store(fwd_index(params.fwd), Relaxed);
        *self.tunnel.lock().unwrap_or_else(|e| e.into_inner()) = params.tunnel;
        self.changed();
    }

    /// Marks the destination linked (`-a`, or resurrected from the trash) or unlinked (`-d`).
    pub fn set_available(&self, available: bool) {
        self.available.store(available, Relaxed);
    }

    /// A new connection was bound here (kernel `ip_vs_bind_dest`): it starts inactive.
    pub fn bind_conn(&self) {
        self.inactive.fetch_add(1, SeqCst);
        self.check_overload_on_bind();
        self.changed();
    }

    /// A persistence template was bound here.
    pub fn bind_template(&self) {
        self.persist.fetch_add(1, Relaxed);
        self.check_overload_on_bind();
        self.changed();
    }

    /// A connection left (`ip_vs_unbind_dest`); `active` tells which counter it was in.
    pub fn unbind_conn(&self, active: bool) {
        if active {
            saturating_dec(&self.active);
        } else {
            saturating_dec(&self.inactive);
        }
        self.check_overload_on_unbind();
        self.changed();
    }

    /// A persistence template left.
    pub fn unbind_template(&self) {
        saturating_dec(&self.persist);
        self.check_overload_on_unbind();
        self.changed();
    }

    /// A connection moved between active and inactive states.
    pub fn conn_became_active(&self, active: bool) {
        if active {
            saturating_dec(&self.inactive);
            self.active.fetch_add(1, SeqCst);
        } else {
            saturating_dec(&self.active);
            self.inactive.fetch_add(1, SeqCst);
        }
        self.changed();
    }

    /// From now on, changes are reported to `watch`. The caller (an index, under its
    /// service's lock) re-reads the destination afterwards: a change made before the switch
    /// is seen by that read, one made after it is reported to `watch`.
    pub(crate) fn watch(&self, watch: Arc<Watch>) {
        self.watch.store(Some(watch));
        self.ever_watched.store(true, SeqCst);
    }

    /// Stops reporting to `feed`, unless another index has taken the destination since.
    pub(crate) fn unwatch(&self, feed: &Arc<ChangeFeed>) {
        let current = self.watch.load();
        if current.as_ref().is_some_and(|w| Arc::ptr_eq(&w.feed, feed)) {
            self.watch.compare_and_swap(&*current, None);
        }
    }

    /// Tells the watching index, if any, that this destination changed.
    fn changed(&self) {
        if !self.ever_watched.load(SeqCst) {
            return;
        }
        if let Some(watch) = &*self.watch.load() {
            watch.feed.mark(watch.slot);
        }
    }

    fn check_overload_on_bind(&self) {
        let upper = self.u_threshold.load(Relaxed);
        if upper != 0 && self.active_conns() + self.inact_conns() >= upper {
            self.overloaded.store(true, SeqCst);
        }
    }

    fn check_overload_on_unbind(&self) {
        let (upper, lower) = self.thresholds();
        let conns = self.active_conns() + self.inact_conns();
        let clear = if lower != 0 {
            conns < lower
        } else if upper != 0 {
            (conns as u64) * 4 < (upper as u64) * 3
        } else {
            true
        };
        if clear {
            self.overloaded.store(false, SeqCst);
        }
    }

    /// Test helper: sets the connection counters directly.
    pub fn set_conns_for_test(&self, active: u32, inactive: u32) {
        self.active.store(active, SeqCst);
        self.inactive.store(inactive, SeqCst);
        self.changed();
    }

    /// Test helper: sets the OVERLOAD flag directly.
    pub fn set_overloaded_for_test(&self, overloaded: bool) {
        self.overloaded.store(overloaded, SeqCst);
        self.changed();
    }
}

fn saturating_dec(counter: &AtomicU32) {
    // Counters never go below zero even if a bug unbinds twice; a wrapped ActiveConn of
    // 4294967295 would be a far worse symptom than an off-by-one.
    let _ = counter.fetch_update(SeqCst, SeqCst, |v| v.checked_sub(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_thresholds(upper: u32, lower: u32) -> Destination {
        let d = Destination::for_test(Ipv4Addr::new(192, 168, 100, 7), 80, 1);
        d.update(&DestParams {
            fwd: FwdMethod::Masq,
            weight: 1,
            u_threshold: upper,
            l_threshold: lower,
            tunnel: TunnelKind::Ipip,
        });
        d
    }

    #[test]
    fn upper_threshold_overloads_and_lower_threshold_releases() {
        // -x 3 -y 1: overloaded at 3 connections, back only below 1.
        let d = with_thresholds(3, 1);
        d.bind_conn();
        d.bind_conn();
        assert!(!d.is_overloaded());
        d.bind_conn();
        assert!(d.is_overloaded());
        d.unbind_conn(false);
        d.unbind_conn(false);
        assert!(d.is_overloaded(), "1 connection is not below -y 1");
        d.unbind_conn(false);
        assert!(!d.is_overloaded());
    }

    #[test]
    fn without_a_lower_threshold_three_quarters_of_the_upper_releases() {
        let d = with_thresholds(4, 0);
        for _ in 0..4 {
            d.bind_conn();
        }
        assert!(d.is_overloaded());
        d.unbind_conn(false);
        assert!(d.is_overloaded(), "3*4 < 4*3 is false");
        d.unbind_conn(false);
        assert!(!d.is_overloaded(), "2*4 < 4*3");
    }

    #[test]
    fn templates_count_in_persistconns_not_in_the_threshold() {
        let d = with_thresholds(2, 0);
        d.bind_template();
        d.bind_template();
        assert_eq!(d.persist_conns(), 2);
        assert!(!d.is_overloaded());
        d.bind_conn();
        d.bind_conn();
        assert!(d.is_overloaded());
    }

    #[test]
    fn raising_the_upper_threshold_clears_overload_at_once() {
        let d = with_thresholds(1, 0);
        d.bind_conn();
        assert!(d.is_overloaded());
        d.update(&DestParams {
            fwd: FwdMethod::Masq,
            weight: 1,
            u_threshold: 5,
            l_threshold: 0,
            tunnel: TunnelKind::Ipip,
        });
        assert!(!d.is_overloaded());
    }
}
