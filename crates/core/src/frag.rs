//! IP fragments: forwarded, not reassembled.
//!
//! Only a datagram's first fragment carries the ports that identify its connection. When it
//! goes through, the director remembers (protocol, source, destination, IP ID) → connection
//! for [`FRAG_TIMEOUT_MS`], and the later fragments — which need only their IP address
//! rewritten, since the L4 checksum in the first fragment already covers the whole
//! datagram — follow it. A later fragment that arrives before its first one is dropped and
//! counted (the kernel's IPVS would reassemble it; masq trades that for never holding
//! datagrams). In practice fragments arrive in order, microseconds apart.
//!
//! A mapping is forgotten as soon as its datagram has gone through whole: the last
//! fragment names the datagram's length, and once the fragments seen cover it nothing more
//! will follow. Keeping finished datagrams for the timeout would let a client's ordinary
//! fragmented traffic (a few datagrams a second) fill its share and lock it out.
//!
//! Bounds, so that one sender cannot switch fragment forwarding off for everyone: at most
//! [`MAX_ENTRIES`] datagrams in all and [`MAX_PER_SOURCE`] per client. The share is the
//! client's in both directions — a real server answers every client, so counting its
//! answers against it would let one client's flood use up the real server's share and
//! stop everybody's fragmented answers. A client at its share is refused more (its later
//! datagrams are dropped whole, first fragment included, and counted); a full table
//! forgets its oldest datagram to make
//! room, so a flood of first fragments from spoofed sources only shortens how long a
//! mapping lives, never stops new ones.
//!
//! The insertion order sits behind a mutex taken only when a first fragment is remembered;
//! later fragments (and every unfragmented packet) never touch it.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::conn::Conn;
use crate::time::Timestamp;

/// How long a fragmented datagram's mapping lives (the kernel's `ipfrag_time`).
pub const FRAG_TIMEOUT_MS: u64 = 30_000;
/// At most this many datagrams in flight are remembered.
pub const MAX_ENTRIES: usize = 4096;
/// At most this many of them for one client (from it, or to it).
pub const MAX_PER_SOURCE: u32 = 64;

/// Identifies one fragmented datagram as it arrives (before any rewrite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ident: u16,
}

/// Where a fragment sits in its datagram, in payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragPiece {
    pub offset: u32,
    pub len: u32,
    /// More Fragments is clear: this piece ends the datagram.
    pub last: bool,
}

/// One remembered datagram.
#[derive(Debug)]
struct Remembered {
    conn: Arc<Conn>,
    expires: Timestamp,
    client: Ipv4Addr,
    /// Payload bytes forwarded so far (duplicates counted twice: such a datagram is
    /// forgotten early, and its stray duplicate dropped, which costs nothing).
    covered: u32,
    /// The datagram's payload length, known once its last fragment was seen.
    total: Option<u32>,
}

impl Remembered {
    fn complete(&self) -> bool {
        self.total.is_some_and(|total| self.covered >= total)
    }
}

/// What the table refused or forgot to stay within its bounds.
#[derive(Debug, Default)]
pub struct FragCounters {
    /// First fragments not remembered: their client had [`MAX_PER_SOURCE`] in flight.
    pub refused_per_client: AtomicU64,
    /// Datagrams forgotten early because the table was full.
    pub shed_oldest: AtomicU64,
}

/// The datagrams whose first fragment went through.
#[derive(Debug, Default)]
pub struct FragTable {
    /// Each datagram's connection, its expiry, and the client its share is counted for.
    map: DashMap<FragKey, Remembered>,
    /// Entries in `map` (its `len` locks every shard).
    count: AtomicUsize,
    /// Datagrams remembered per client.
    per_client: DashMap<Ipv4Addr, u32>,
    /// Keys in the order they were remembered; may hold keys already expired.
    order: Mutex<VecDeque<FragKey>>,
    pub counters: FragCounters,
}

impl FragTable {
    /// Remembers that datagram `key`, whose first fragment carries `first_len` payload
    /// bytes, belongs to `conn`. Returns `false` when its client already has
    /// [`MAX_PER_SOURCE`] datagrams in flight (the later fragments will then be dropped
    /// and counted).
    pub fn remember(&self, key: FragKey, conn: &Arc<Conn>, first_len: u32, now: Timestamp) -> bool {
        let client = *conn.client().ip();
        let entry = || Remembered {
            conn: conn.clone(),
            expires: Timestamp(now.0 + FRAG_TIMEOUT_MS),
            client,
            covered: first_len,
            total: None,
        };
        if let Some(mut e) = self.map.get_mut(&key) {
            if e.client == client {
                *e = entry();
                return true;
            }
            // The same datagram key for another client (a reused IP ID): forget the old
            // one, so each client's count stays its own.
            drop(e);
            self.forget(&key);
        }
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut n = self.per_client.entry(client).or_insert(0);
            if *n >= MAX_PER_SOURCE {
                self.counters.refused_per_client.fetch_add(1, Relaxed);
                return false;
            }
            *n += 1;
        }
        while self.count.load(Relaxed) >= MAX_ENTRIES {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            if self.forget(&oldest) {
                self.counters.shed_oldest.fetch_add(1, Relaxed);
            }
        }
        match self.map.entry(key) {
            Entry::Vacant(v) => {
                v.insert(entry());
                self.count.fetch_add(1, Relaxed);
                order.push_back(key);
            }
            // Another worker remembered it meanwhile, and counted its own client.
            Entry::Occupied(mut o) => {
                let theirs = o.insert(entry()).client;
                drop(o);
                self.release_client(theirs);
            }
        }
        // Keys of datagrams that expired meanwhile pile up in `order`; drop them now and
        // then, so it stays within twice the table.
        if order.len() > 2 * MAX_ENTRIES {
            order.retain(|k| self.map.contains_key(k));
        }
        true
    }

    /// The connection of a later fragment, if its first fragment was seen; the datagram
    /// is forgotten once this piece completes it.
    pub fn follow(&self, key: &FragKey, piece: FragPiece, now: Timestamp) -> Option<Arc<Conn>> {
        // One shard lock: the piece is counted and, if it completes the datagram, the
        // entry removed under it.
        let mut conn = None;
        let completed = self.map.remove_if_mut(key, |_, e| {
            if e.expires <= now {
                return false;
            }
            e.covered = e.covered.saturating_add(piece.len);
            if piece.last {
                e.total = Some(piece.offset.saturating_add(piece.len));
            }
            conn = Some(e.conn.clone());
            e.complete()
        });
        if let Some((_, gone)) = completed {
            self.count.fetch_sub(1, Relaxed);
            self.release_client(gone.client);
        }
        conn
    }

    /// Forgets timed-out datagrams.
    pub fn expire(&self, now: Timestamp) {
        let mut gone = Vec::new();
        self.map.retain(|_, e| {
            let keep = e.expires > now;
            if !keep {
                gone.push(e.client);
            }
            keep
        });
        self.count.fetch_sub(gone.len(), Relaxed);
        for client in gone {
            self.release_client(client);
        }
    }

    /// Removes `key` (a datagram whose first fragment was dropped after all); whether it
    /// was there.
    pub fn forget(&self, key: &FragKey) -> bool {
        let Some((_, gone)) = self.map.remove(key) else {
            return false;
        };
        self.count.fetch_sub(1, Relaxed);
        self.release_client(gone.client);
        true
    }

    fn release_client(&self, client: Ipv4Addr) {
        if let Entry::Occupied(mut o) = self.per_client.entry(client) {
            *o.get_mut() -= 1;
            if *o.get() == 0 {
                o.remove();
            }
        }
    }

    /// Datagrams remembered.
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Clients with datagrams remembered.
    pub fn clients(&self) -> usize {
        self.per_client.len()
    }
}
