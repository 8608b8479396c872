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

use std::sync::Arc;

use masq_wire::nat;

use super::frame::Ipv4Frame;
use super::worker::Worker;
use crate::conn::{Conn, FlowKey};
use crate::control::FwdMethod;
use crate::verdict::{DropReason, Verdict};

impl Worker {
    /// The direct-routing connection a packet from the DIP side with `key` (VIP:vport →
    /// client) answers, if any: only packets from a VIP can be one, and only a connection
    /// that is forwarded by direct routing is answered that way.
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
            .filter(|conn| conn.fwd() == FwdMethod::Route)
    }
}

/// Whether `conn`'s packets keep their addresses and ports.
pub(super) fn is_routed(conn: &Conn) -> bool {
    conn.fwd() == FwdMethod::Route
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
