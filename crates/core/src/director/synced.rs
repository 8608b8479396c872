//! Connection sync at the connection table: a master's workers queue the entries the
//! kernel's rule says to send (`sync::emit`), and a backup enters the ones it receives in
//! its table, bounded by `--max-conns` like any new connection, so that the data path
//! finds them when the clients' traffic comes to this director.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use masq_wire::ipvs_sync::{flags, SyncConn, SyncMessage};

use super::worker::Worker;
use crate::conn::{Conn, FlowKey, Inserted};
use crate::control::DestKey;
use crate::dest::Destination;
use crate::persist::{Template, TemplateKey};
use crate::proto_state::ConnState;
use crate::service::VirtualService;
use crate::sync::apply::{read_entry, SyncedEntry};
use crate::sync::emit::conn_entry;
use crate::sync::{Applied, EntryRefusal};
use crate::time::Timestamp;

/// How long a template the master sent without a timeout lives (the kernel's default
/// persistence timeout).
const DEFAULT_TEMPLATE_MS: u64 = 300_000;

impl Worker {
    /// Whether a synced entry fits as the table is. Unlike a client's new connection it
    /// never sheds anything: whoever can reach the sync group (the protocol has no
    /// authentication, as the kernel's) must not be able to push real clients' half-open
    /// connections or idle templates out.
    fn room_for_synced(&self) -> bool {
        self.director.entry_count() < self.director.config.max_conns
    }

    /// The master's hook on a client packet of `conn` that moved it `states`: when a
    /// master runs and the kernel's rule says so, queues the connection and its template
    /// for the sync thread. One relaxed load when no master runs.
    pub(super) fn queue_for_sync(
        &self,
        conn: &Conn,
        states: (ConnState, ConnState),
        now: Timestamp,
    ) {
        let outbox = &self.director.sync_outbox;
        if !outbox.is_active() {
            return;
        }
        let in_pkts = conn.count_in_packet();
        let threshold = crate::sync::SyncThreshold::default();
        if !threshold.conn_needs_sync(conn.protocol(), states, in_pkts) {
            return;
        }
        let counters = &self.director.sync_counters;
        outbox.push(
            self.sync_shard,
            conn_entry(conn, &self.director.timeouts),
            counters,
        );
        if let Some(template) = &conn.template {
            outbox.push(self.sync_shard, template_entry(template, now), counters);
        }
    }

    /// A backup's receipt of one message (a UDP payload): refused whole when it cannot be
    /// read to the end, ignored when it is for another `syncid` (0 takes every one, as
    /// in the kernel), else each entry applied or refused on its own. Everything is
    /// counted in the director's sync counters.
    pub fn apply_sync_message(&mut self, now: Timestamp, payload: &[u8], syncid: u8) {
        let counters = &self.director.sync_counters;
        let message = match SyncMessage::new_checked(payload) {
            Ok(message) => message,
            Err(why) => return counters.refuse_message(why),
        };
        if syncid != 0 && message.syncid() != syncid {
            counters.messages_other_syncid.fetch_add(1, Relaxed);
            return;
        }
        counters.messages_applied.fetch_add(1, Relaxed);
        for entry in message.entries() {
            match read_entry(&entry).and_then(|e| self.apply_synced(now, &e)) {
                Ok(applied) => self.director.sync_counters.count_applied(applied),
                Err(why) => self.director.sync_counters.refuse_conn(why),
            }
        }
    }

    /// Enters one synced connection or template, or brings the one here up to date.
    fn apply_synced(&mut self, now: Timestamp, e: &SyncedEntry) -> Result<Applied, EntryRefusal> {
        let (svc, dest) = self.synced_target(e)?;
        if e.template {
            return self.apply_synced_template(now, e, svc, dest);
        }
        let timeout_ms = e
            .timeout_ms
            .unwrap_or_else(|| self.director.timeouts.millis(e.state));
        let expires = Timestamp(now.as_millis() + timeout_ms);
        let flow = FlowKey {
            protocol: e.protocol,
            src: e.client,
            dst: e.vaddr,
        };
        let director = self.director.clone();
        let conns = &director.conns;
        if let Some(here) = conns.lookup_inbound(&flow) {
            if here.daddr() == e.daddr {
                here.set_synced(e.state, expires);
                return Ok(Applied::Updated);
            }
            // The master sent this client elsewhere since: follow it.
            conns.remove(&here);
        }
        if !self.room_for_synced() {
            return Err(EntryRefusal::TableFull);
        }
        let conn = Conn::new(flow, e.daddr, svc, dest, None, now);
        conn.set_synced(e.state, expires);
        Ok(match conns.insert(conn) {
            Inserted::New(_) => Applied::Created,
            Inserted::Existing(here) => {
                here.set_synced(e.state, expires);
                Applied::Updated
            }
        })
    }

    /// A persistence template: clients of its network keep going to its real server here
    /// too.
    fn apply_synced_template(
        &mut self,
        now: Timestamp,
        e: &SyncedEntry,
        svc: Arc<VirtualService>,
        dest: Arc<Destination>,
    ) -> Result<Applied, EntryRefusal> {
        let timeout_ms = e.timeout_ms.unwrap_or_else(|| {
            svc.lock()
                .params
                .persistent
                .map_or(DEFAULT_TEMPLATE_MS, |secs| u64::from(secs) * 1000)
        });
        let key = TemplateKey {
            protocol: e.protocol,
            client_net: *e.client.ip(),
            vaddr: *e.vaddr.ip(),
            vport: e.vaddr.port(),
        };
        let director = self.director.clone();
        let templates = &director.templates;
        if let Some(here) = templates.lookup(&key) {
            here.extend_to(Timestamp(now.as_millis() + timeout_ms));
            return Ok(Applied::Updated);
        }
        if !self.room_for_synced() {
            return Err(EntryRefusal::TableFull);
        }
        templates.insert(key, svc, dest, e.daddr.port(), now, timeout_ms);
        Ok(Applied::Created)
    }

    /// The service and real server an entry names; both must be configured here as on
    /// the master.
    fn synced_target(
        &self,
        e: &SyncedEntry,
    ) -> Result<(Arc<VirtualService>, Arc<Destination>), EntryRefusal> {
        let table = self.director.services.load();
        let svc = table
            .lookup(e.protocol, *e.vaddr.ip(), e.vaddr.port())
            .cloned()
            .ok_or(EntryRefusal::UnknownService)?;
        let dest = {
            let state = svc.lock();
            let find = |port| {
                let key = DestKey {
                    addr: IpAddr::V4(*e.daddr.ip()),
                    port,
                };
                state
                    .dests
                    .position(&key)
                    .map(|i| state.dests.as_slice()[i].clone())
            };
            // A real server of a port-0 service may have been added without a port.
            find(e.daddr.port()).or_else(|| find(0))
        };
        let dest = dest.ok_or(EntryRefusal::UnknownDestination)?;
        // A connection forwarded here another way than the master's would break.
        if !e.template && dest.forwarding() != e.fwd {
            return Err(EntryRefusal::Forwarding);
        }
        Ok((svc, dest))
    }
}

/// The entry a master sends for a template: as the kernel's, with the time it has left.
fn template_entry(template: &Template, now: Timestamp) -> SyncConn {
    let left_ms = template
        .expires()
        .as_millis()
        .saturating_sub(now.as_millis());
    let key = template.key;
    SyncConn {
        protocol: key.protocol,
        flags: flags::MASQ | flags::TEMPLATE | flags::INACTIVE,
        state: 0,
        caddr: IpAddr::V4(key.client_net),
        cport: 0,
        vaddr: IpAddr::V4(key.vaddr),
        vport: key.vport,
        daddr: template.dest.key.addr,
        dport: template.dport,
        fwmark: 0,
        timeout: u32::try_from(left_ms.div_ceil(1000)).unwrap_or(u32::MAX),
        seq: None,
    }
}
