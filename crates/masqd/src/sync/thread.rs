//! The sync thread: one OS thread that follows the started daemons and does their I/O.
//!
//! Master: every round it takes what the packet workers queued (the core's
//! [`masq_core::sync::SyncOutbox`]), and sends it in messages of at most sync-maxlen
//! bytes: a message as soon as it is full, the rest once its oldest entry has waited a
//! second (the kernel's flush). Backup: it receives the group's messages and has the
//! core apply them. A round waits at most [`RECEIVE_WAIT`], so a stop or a
//! `--start-daemon`/`--stop-daemon` is seen within that. A socket that cannot be set up
//! stops its daemon again, with the reason in the log: a listed daemon is a working one.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use masq_core::control::Control;
use masq_core::sync::outbox::SHARD_CAPACITY;
use masq_core::sync::{DaemonConfig, SyncRole};
use masq_core::{Director, Worker};
use masq_wire::ipvs_sync::{
    MessageWriter, PushError, SyncConn, ENTRY_V4_LEN, HEADER_LEN, MAX_ENTRIES,
};

use super::sockets::{open_backup, open_master, RECEIVE_WAIT};
use crate::clock::Clock;
use crate::stop::Stop;

/// The longest an entry waits in a master before it is sent (the kernel's 1 s flush).
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// Entries a master holds for its next messages; more are dropped (and counted).
const PENDING_MAX: usize = 16 * SHARD_CAPACITY;
/// The smallest message buffer: a header and one IPv4 entry.
const MIN_MESSAGE: usize = HEADER_LEN + ENTRY_V4_LEN;
/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Starts the sync thread; it ends when `stop` is requested.
///
/// # Errors
/// When the thread cannot be started.
pub fn start(director: Arc<Director>, clock: Clock, stop: Arc<Stop>) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("masq-sync".into())
        .spawn(move || {
            let mut sync = SyncThread {
                worker: director.worker(),
                director,
                clock,
                generation: None,
                master: None,
                backup: None,
                spare: Vec::with_capacity(SHARD_CAPACITY),
                datagram: vec![0; MAX_DATAGRAM],
            };
            while !stop.requested() {
                sync.round(&stop);
            }
        })
        .context("starting the sync thread")
}

struct SyncThread {
    director: Arc<Director>,
    /// The backup applies through a worker of its own (its table insertions shed as a
    /// packet thread's would).
    worker: Worker,
    clock: Clock,
    /// The daemons' generation the sockets were opened for.
    generation: Option<u64>,
    master: Option<Master>,
    backup: Option<Backup>,
    /// Swapped with the outbox's shards.
    spare: Vec<SyncConn>,
    /// A backup's receive buffer.
    datagram: Vec<u8>,
}

struct Master {
    config: DaemonConfig,
    socket: UdpSocket,
    to: SocketAddr,
    /// Entries not sent yet, oldest first, and when the oldest was queued.
    pending: Vec<SyncConn>,
    oldest: Option<Instant>,
    /// One message, sync-maxlen bytes.
    message: Vec<u8>,
}

impl Master {
    /// How many entries fill one message: masq's entries are all IPv4 without options,
    /// of one size, so a message is full at a count known in advance.
    fn entries_per_message(&self) -> usize {
        ((self.message.len() - HEADER_LEN) / ENTRY_V4_LEN).clamp(1, MAX_ENTRIES)
    }
}

struct Backup {
    config: DaemonConfig,
    socket: UdpSocket,
}

impl SyncThread {
    fn round(&mut self, stop: &Stop) {
        self.follow_daemons();
        if let Some(master) = &mut self.master {
            let counters = &self.director.sync_counters;
            self.director.sync_outbox.drain(&mut self.spare, |e| {
                if master.pending.len() < PENDING_MAX {
                    master.pending.push(*e);
                } else {
                    counters.conns_queue_full.fetch_add(1, Relaxed);
                }
            });
            if master.oldest.is_none() && !master.pending.is_empty() {
                master.oldest = Some(Instant::now());
            }
            master.send_due(&self.director);
        }
        match &self.backup {
            Some(backup) => {
                // Waits up to RECEIVE_WAIT.
                if let Ok((len, _)) = backup.socket.recv_from(&mut self.datagram) {
                    let syncid = backup.config.syncid;
                    self.worker
                        .apply_sync_message(self.clock.now(), &self.datagram[..len], syncid);
                }
            }
            None => {
                stop.sleep_until(Instant::now() + RECEIVE_WAIT);
            }
        }
    }

    /// Opens and closes sockets as daemons were started and stopped.
    fn follow_daemons(&mut self) {
        let generation = self.director.sync_daemons.generation();
        if self.generation == Some(generation) {
            return;
        }
        self.generation = Some(generation);
        let daemons = &self.director.sync_daemons;
        let (master, backup) = (daemons.get(SyncRole::Master), daemons.get(SyncRole::Backup));
        if self.master.as_ref().map(|m| &m.config) != master.as_ref() {
            self.master = master.and_then(|config| {
                let opened = open_master(&config).map(|(socket, to)| Master {
                    message: vec![0; usize::from(config.sync_maxlen).max(MIN_MESSAGE)],
                    config,
                    socket,
                    to,
                    pending: Vec::new(),
                    oldest: None,
                });
                self.opened(SyncRole::Master, opened)
            });
        }
        if self.backup.as_ref().map(|b| &b.config) != backup.as_ref() {
            self.backup = backup.and_then(|config| {
                let opened = open_backup(&config).map(|socket| Backup { config, socket });
                self.opened(SyncRole::Backup, opened)
            });
        }
    }

    /// Says how the daemon of `role` came up; one that cannot run is stopped again.
    fn opened<T>(&mut self, role: SyncRole, opened: Result<T>) -> Option<T> {
        match opened {
            Ok(daemon) => {
                tracing::info!("sync {} daemon running", role.name());
                Some(daemon)
            }
            Err(e) => {
                tracing::error!("sync {} daemon: {e:#}; stopped it", role.name());
                let _ = self.director.control(self.clock.now()).stop_daemon(role);
                self.generation = Some(self.director.sync_daemons.generation());
                None
            }
        }
    }
}

impl Master {
    /// Sends every full message, and the last, partial one when its oldest entry has
    /// waited [`FLUSH_AFTER`].
    fn send_due(&mut self, director: &Director) {
        let counters = &director.sync_counters;
        let due = self.oldest.is_some_and(|t| t.elapsed() >= FLUSH_AFTER);
        let per_message = self.entries_per_message();
        let mut sent = 0;
        // A partial message is written only once it is due, never encoded each round.
        while self.pending.len() - sent >= per_message || (due && sent < self.pending.len()) {
            let mut writer = MessageWriter::new(&mut self.message, self.config.syncid);
            let (mut taken, mut written) = (0, 0);
            for e in &self.pending[sent..] {
                match writer.push(e) {
                    Ok(()) => written += 1,
                    Err(PushError::Full) => break,
                    // Never made (masq's entries are all IPv4); skipped, not counted sent.
                    Err(PushError::MixedFamilies) => {}
                }
                taken += 1;
            }
            // An entry no message has room for (a tiny sync-maxlen) is skipped unsent.
            sent += taken.max(1);
            if written == 0 {
                continue;
            }
            let len = writer.finish();
            match self.socket.send_to(&self.message[..len], self.to) {
                Ok(_) => {
                    counters.messages_sent.fetch_add(1, Relaxed);
                    counters.conns_sent.fetch_add(written as u64, Relaxed);
                }
                Err(e) => {
                    counters.messages_send_failed.fetch_add(1, Relaxed);
                    tracing::debug!("sync master: sendto({}): {e}", self.to);
                }
            }
        }
        self.pending.drain(..sent.min(self.pending.len()));
        if self.pending.is_empty() {
            self.oldest = None;
        } else if sent > 0 {
            // What is left after full messages waits its own second from now.
            self.oldest = Some(Instant::now());
        }
    }
}
