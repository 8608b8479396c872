//! What the sync daemons did, counted: messages and connections a master sent or lost, and
//! what a backup applied or refused, by reason. Bumped by the sync thread and (for a full
//! queue) the packet workers; read by the metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use masq_wire::ipvs_sync::SyncRefusal;

/// Why a backup did not apply one entry of a message it could read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryRefusal {
    /// An IPv6 connection: masq's table holds IPv4 only.
    Ipv6,
    /// A forwarding method masq does not use (local delivery).
    Forwarding,
    /// Neither TCP nor UDP.
    Protocol,
    /// A state index the protocol does not have.
    State,
    /// A firewall-mark service (not forwarded by masq).
    Fwmark,
    /// An option the entry says must be understood, which masq does not know.
    UnknownOption,
    /// No such virtual service here.
    UnknownService,
    /// The service has no such real server here.
    UnknownDestination,
    /// The connection table is full of entries it may not shed.
    TableFull,
}

impl EntryRefusal {
    /// Every reason, in the order the metrics list them.
    pub const ALL: [EntryRefusal; 9] = [
        EntryRefusal::Ipv6,
        EntryRefusal::Forwarding,
        EntryRefusal::Protocol,
        EntryRefusal::State,
        EntryRefusal::Fwmark,
        EntryRefusal::UnknownOption,
        EntryRefusal::UnknownService,
        EntryRefusal::UnknownDestination,
        EntryRefusal::TableFull,
    ];

    /// The metrics' label.
    pub fn name(self) -> &'static str {
        match self {
            EntryRefusal::Ipv6 => "ipv6",
            EntryRefusal::Forwarding => "forwarding_method",
            EntryRefusal::Protocol => "protocol",
            EntryRefusal::State => "state",
            EntryRefusal::Fwmark => "fwmark",
            EntryRefusal::UnknownOption => "unknown_option",
            EntryRefusal::UnknownService => "unknown_service",
            EntryRefusal::UnknownDestination => "unknown_destination",
            EntryRefusal::TableFull => "table_full",
        }
    }
}

/// What a backup did with one entry it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The connection (or template) is new here.
    Created,
    /// It was here: its state and timer follow the master's.
    Updated,
}

/// The sync daemons' counters.
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Master: messages sent, and those the socket refused.
    pub messages_sent: AtomicU64,
    pub messages_send_failed: AtomicU64,
    /// Master: entries in the messages sent, and those a full queue dropped.
    pub conns_sent: AtomicU64,
    pub conns_queue_full: AtomicU64,
    /// Backup: messages read to the end, and those of another syncid.
    pub messages_applied: AtomicU64,
    pub messages_other_syncid: AtomicU64,
    messages_refused: [AtomicU64; SyncRefusal::ALL.len()],
    /// Backup: entries that made a new entry, or updated one.
    pub conns_created: AtomicU64,
    pub conns_updated: AtomicU64,
    conns_refused: [AtomicU64; EntryRefusal::ALL.len()],
}

impl SyncCounters {
    /// A backup could not read a message.
    pub fn refuse_message(&self, why: SyncRefusal) {
        let i = SyncRefusal::ALL.iter().position(|&r| r == why);
        if let Some(i) = i {
            self.messages_refused[i].fetch_add(1, Relaxed);
        }
    }

    /// A backup did not apply an entry.
    pub fn refuse_conn(&self, why: EntryRefusal) {
        let i = EntryRefusal::ALL.iter().position(|&r| r == why);
        if let Some(i) = i {
            self.conns_refused[i].fetch_add(1, Relaxed);
        }
    }

    /// A backup applied an entry.
    pub fn count_applied(&self, applied: Applied) {
        match applied {
            Applied::Created => &self.conns_created,
            Applied::Updated => &self.conns_updated,
        }
        .fetch_add(1, Relaxed);
    }

    /// Messages refused, by reason.
    pub fn messages_refused(&self) -> impl Iterator<Item = (SyncRefusal, u64)> + '_ {
        SyncRefusal::ALL
            .into_iter()
            .zip(&self.messages_refused)
            .map(|(r, n)| (r, n.load(Relaxed)))
    }

    /// Entries refused, by reason.
    pub fn conns_refused(&self) -> impl Iterator<Item = (EntryRefusal, u64)> + '_ {
        EntryRefusal::ALL
            .into_iter()
            .zip(&self.conns_refused)
            .map(|(r, n)| (r, n.load(Relaxed)))
    }
}
