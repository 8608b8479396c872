//! Direct routing (`-g`, gatewaying): the client's packet goes to the real server as it
//! came, one hop older — no address, port or L4 checksum changes, only the Ethernet
//! addresses (the real server's MAC, learnt on the DIP side, and the director's DIP-side
//! MAC) and the TTL, which the kernel's `ip_vs_dr_xmit` decrements as any router does. The
//! real server holds the VIP on a device that does not answer ARP and answers the client
//! from VIP:vport itself.
//!
//! When the director is also the real servers' default gateway (the classic lab), those
//! answers come back through it: the kernel would route them, masq forwards them unchanged
//! (TTL and MACs aside) for the connections it knows, counts them and follows their TCP
//! state as for NAT. A DR answer is found by the connection's inbound key reversed (the
//! real server speaks as the VIP), never by the outbound key, which names RIP:vport.
//!
//! The rest of the path — lookup, scheduling, persistence, counters, MTU, traces — is the
//! one NAT takes ([`super::nat`]); this module holds only what direct routing does
//! differently.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use masq_wire::ethernet::MacAddr;
use masq_wire::nat;

use super::frame::Ipv4Frame;
use super::worker::Worker;
use crate::conn::{Conn, FlowKey};
use crate::control::FwdMethod;
use crate::time::Timestamp;
use crate::verdict::{DropReason, Verdict};

/// A host on the DIP side that used a VIP as its ARP sender address: a direct-routing real
/// server without arp_announce=2 (it asks for its gateway from the VIP, its answers'
/// source) or without arp_ignore=1 (it answers for the VIP). Either way the switch learns
/// the VIP at a real server, and a router on that segment may send clients' packets
/// there instead of to the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipClaim {
    pub vip: Ipv4Addr,
    pub mac: MacAddr,
    pub seen: Timestamp,
}

/// The last [`VipClaim`], in atomics: written from the ARP path without a lock, a few
/// words whatever a flood sends (a reader may see one claim's fields mixed with the
/// next's, both real).
#[derive(Debug, Default)]
pub(super) struct LastVipClaim {
    vip: AtomicU32,
    mac: AtomicU64,
    seen_ms: AtomicU64,
}

impl LastVipClaim {
    pub fn record(&self, vip: Ipv4Addr, mac: MacAddr, now: Timestamp) {
        let mut bytes = [0u8; 8];
        bytes[2..].copy_from_slice(&mac.0);
        self.vip.store(u32::from(vip), Relaxed);
        self.mac.store(u64::from_be_bytes(bytes), Relaxed);
        // Written last: a reader that sees a time sees a claim.
        self.seen_ms.store(now.as_millis().max(1), Relaxed);
    }

    pub fn get(&self) -> Option<VipClaim> {
        let seen = self.seen_ms.load(Relaxed);
        if seen == 0 {
            return None;
        }
        let bytes = self.mac.load(Relaxed).to_be_bytes();
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&bytes[2..]);
        Some(VipClaim {
            vip: Ipv4Addr::from(self.vip.load(Relaxed)),
            mac: MacAddr(mac),
            seen: Timestamp(seen),
        })
    }
}

impl Worker {
    /// The direct-routing or tunnelled connection a packet from the DIP side with `key`
    /// (VIP:vport → client) answers, if any: only packets from a VIP can be one, and only
    /// a connection whose real server holds the VIP itself is answered that way.
    pub(super) fn routed_reply(&self, key: &FlowKey) -> Option<Arc<Conn>> {
        if !self.director.services.load().is_vip(*key.src.ip()) {
            return None;
        }
        let inbound = FlowKey {
            protocol: key.protocol,
            src: key.dst,
            dst: key.src,
        };
        self.director
            .conns
            .lookup_inbound(&inbound)
            .filter(|conn| is_routed(conn))
    }
}

/// Whether `conn`'s packets keep their addresses and ports: direct routing, and
/// tunnelling, which sends them the same way inside an outer header ([`super::tunnel`]).
pub(super) fn is_routed(conn: &Conn) -> bool {
    matches!(conn.fwd(), FwdMethod::Route | FwdMethod::Tunnel)
}

/// Direct routing's only change to the IP packet: the TTL, and with it the header
/// checksum. On error nothing has been changed.
pub(super) fn route(frame: &mut Ipv4Frame<'_>) -> Result<(), Verdict> {
    let mut ip = frame.ip_mut();
    if !nat::decrement_ttl(&mut ip) {
        return Err(Verdict::Drop(DropReason::TtlExpired));
    }
    ip.fill_checksum();
    Ok(())
}
