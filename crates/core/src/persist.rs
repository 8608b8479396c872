//! Persistence templates (`-p [timeout] -M netmask`), as `ip_vs_sched_persist` keeps them.
//!
//! A template remembers which real server a client network was sent to. While it lives,
//! every new connection from that network to the service goes to the same server, without
//! asking the scheduler — even if the server was quiesced to weight 0 (the kernel's default
//! `expire_quiescent_template=0`). A template is invalid once its server is deleted. Each
//! connection created from it restarts its timer; it cannot expire while it still controls
//! live connections (it is re-armed for 60 s instead). Templates count in PersistConn, not in
//! ActiveConn/InActConn.
//!
//! Templates are entries of the connection table's bound (`--max-conns`) like
//! connections: a flood from spoofed sources at a persistent service makes one per source.
//! A full table sheds templates that control no connection first, as the kernel's
//! `ip_vs_random_dropentry` does; one that an established connection depends on is never
//! shed.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use dashmap::DashMap;

use crate::dest::Destination;
use crate::service::VirtualService;
use crate::time::Timestamp;

/// How long a template that still controls connections is re-armed for.
const REARM_MS: u64 = 60_000;

/// Which clients share a template: protocol, client network, VIP and virtual port (0 for a
/// port-0 service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    pub protocol: u8,
    pub client_net: Ipv4Addr,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
}

/// One persistence template.
#[derive(Debug)]
pub struct Template {
    pub key: TemplateKey,
    pub service: Arc<VirtualService>,
    pub dest: Arc<Destination>,
    /// The destination port shown in listings (the server's port, or 0 for port-0 services).
    pub dport: u16,
    expires: AtomicU64,
    controls: AtomicU32,
}

impl Template {
    /// When the template expires unless a new connection uses it.
    pub fn expires(&self) -> Timestamp {
        Timestamp(self.expires.load(Relaxed))
    }

    /// A sync master sent this template again: it lives at least until `expires`.
    pub fn extend_to(&self, expires: Timestamp) {
        self.expires.fetch_max(expires.as_millis(), Relaxed);
    }

    /// A new connection was created from this template: restart its timer.
    pub fn control_new_conn(&self, now: Timestamp, timeout_ms: u64) {
        self.controls.fetch_add(1, Relaxed);
        self.expires.store(now.as_millis() + timeout_ms, Relaxed);
    }

    /// A connection it controlled went away.
    pub fn release_conn(&self) {
        let _ = self
            .controls
            .fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1));
    }

    /// Connections this template controls now.
    pub fn controlled(&self) -> u32 {
        self.controls.load(Relaxed)
    }
}

/// All templates, shared by the workers.
#[derive(Debug, Default)]
pub struct TemplateTable {
    map: DashMap<TemplateKey, Arc<Template>>,
    /// Templates in `map` (its `len` locks every shard; the bound is checked per new
    /// connection).
    count: AtomicUsize,
}

impl TemplateTable {
    /// The live template for `key`, if its server is still in the service. An invalid one
    /// is removed, as the kernel disarms it.
    pub fn lookup(&self, key: &TemplateKey) -> Option<Arc<Template>> {
        let found = self.map.get(key).map(|t| t.value().clone())?;
        if found.dest.is_available() {
            return Some(found);
        }
        if self
            .map
            .remove_if(key, |_, t| Arc::ptr_eq(t, &found))
            .is_some()
        {
            self.count.fetch_sub(1, Relaxed);
            found.dest.unbind_template();
        }
        None
    }

    /// Creates the template for `key` pointing at `dest`, unless another worker just did;
    /// either way returns the one in the table.
    pub fn insert(
        &self,
        key: TemplateKey,
        service: Arc<VirtualService>,
        dest: Arc<Destination>,
        dport: u16,
        now: Timestamp,
        timeout_ms: u64,
    ) -> Arc<Template> {
        self.map
            .entry(key)
            .or_insert_with(|| {
                self.count.fetch_add(1, Relaxed);
                dest.bind_template();
                Arc::new(Template {
                    key,
                    service,
                    dest,
                    dport,
                    expires: AtomicU64::new(now.as_millis() + timeout_ms),
                    controls: AtomicU32::new(0),
                })
            })
            .value()
            .clone()
    }

    /// Removes expired templates that control nothing; re-arms those that still do.
    pub fn expire(&self, now: Timestamp) -> usize {
        let mut removed = 0;
        self.map.retain(|_, t| {
            if t.expires() > now {
                return true;
            }
            if t.controlled() > 0 {
                t.expires.store(now.as_millis() + REARM_MS, Relaxed);
                return true;
            }
            t.dest.unbind_template();
            removed += 1;
            false
        });
        self.count.fetch_sub(removed, Relaxed);
        removed
    }

    /// Makes room in a full table: removes templates that control no connection, at most
    /// `limit` of them among the first `scan` looked at. Returns how many went.
    pub fn evict_idle(&self, scan: usize, limit: usize) -> usize {
        let mut victims: [Option<Arc<Template>>; 16] = Default::default();
        let mut found = 0;
        for entry in self.map.iter().take(scan) {
            if found == limit.min(victims.len()) {
                break;
            }
            if entry.value().controlled() == 0 {
                victims[found] = Some(entry.value().clone());
                found += 1;
            }
        }
        // The iterator's shard lock is released before removing (dashmap deadlock rule).
        let mut removed = 0;
        for t in victims.iter().flatten() {
            if self
                .map
                .remove_if(&t.key, |_, cur| {
                    Arc::ptr_eq(cur, t) && cur.controlled() == 0
                })
                .is_some()
            {
                self.count.fetch_sub(1, Relaxed);
                t.dest.unbind_template();
                removed += 1;
            }
        }
        removed
    }

    /// Calls `f` on every template (for `-c` listings).
    pub fn for_each(&self, mut f: impl FnMut(&Arc<Template>)) {
        for t in self.map.iter() {
            f(t.value());
        }
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
