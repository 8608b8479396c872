//! Diagnosis: the classic LVS-NAT and direct-routing lab mistakes, recognised from what the data path sees,
//! explained in plain words with the fix. Used by `masqadm --check`, masqd's log and the
//! lab page.

use std::net::{IpAddr, Ipv4Addr};

use crate::control::{DestKey, FwdMethod, ServiceKey};
use crate::director::{Director, VipClaim};
use crate::neigh::AddressConflict;
use crate::time::Timestamp;
use crate::verdict::Side;

/// SYNs forwarded to a real server without a single packet back before it is suspected of
/// answering by another way (its default gateway is not the DIP)...
pub const UNANSWERED_SYNS: u32 = 3;
/// ...with the oldest of them unanswered for this long: a busy server has many SYNs in
/// flight at once, but answers the first within milliseconds.
pub const UNANSWERED_FOR_MS: u64 = 1_500;
/// How long a refusal (RST) stays worth reporting (an ARP conflict:
/// [`crate::neigh::CONFLICT_MEMORY_MS`]).
pub const RECENT_MS: u64 = 60_000;

/// Something wrong, with what masq saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// SYNs went to the real server and nothing ever came back through the director.
    NoReplies {
        service: ServiceKey,
        dest: DestKey,
        syns: u32,
        dip: Option<Ipv4Addr>,
        /// The real server is reached by direct routing (`-g`).
        routed: bool,
    },
    /// The real server answered connection attempts with RST.
    Refusing {
        service: ServiceKey,
        dest: DestKey,
        refused: u64,
    },
    /// Two hosts answer ARP for one address.
    DuplicateAddress(AddressConflict),
    /// The real server never answered ARP.
    Unreachable { service: ServiceKey, dest: DestKey },
    /// A host on the DIP side used a VIP in ARP (a direct-routing real server without
    /// arp_ignore=1 / arp_announce=2).
    VipInArp(VipClaim),
}

impl Finding {
    /// What is wrong, in one sentence.
    pub fn problem(&self) -> String {
        match self {
            Finding::NoReplies {
                dest,
                syns,
                dip,
                routed: false,
                ..
            } => format!(
                "RS {} received {syns} SYNs but never answered through {}: is its default gateway the DIP?",
                dest.addr,
                dip.map_or("the director".to_string(), |d| d.to_string())
            ),
            // Under direct routing an answer through the director is seen only when it is
            // the real server's gateway; a real server without the VIP drops the SYNs.
            Finding::NoReplies {
                dest,
                syns,
                routed: true,
                ..
            } => format!(
                "RS {} received {syns} SYNs for the VIP by direct routing and no answer came back through the director: does it hold the VIP (on lo), and is the DIP its default gateway? (If another router is its gateway, this is expected.)",
                dest.addr
            ),
            Finding::Refusing { dest, refused, .. } => format!(
                "RS {}:{} answered {refused} connection attempts with RST: is anything listening on port {} there?",
                dest.addr, dest.port, dest.port
            ),
            Finding::DuplicateAddress(c) => format!(
                "two hosts answer ARP for {} ({} and {}): was a real server given another one's address?",
                c.addr, c.first, c.second
            ),
            Finding::Unreachable { dest, .. } => format!(
                "RS {} does not answer ARP on the DIP side: is it up, cabled, and on the DIP's network?",
                dest.addr
            ),
            Finding::VipInArp(c) => format!(
                "the host with MAC {} used the VIP {} in ARP on the DIP side: a direct-routing real server must never announce or answer for the VIP",
                c.mac, c.vip
            ),
        }
    }

    /// How to fix it.
    pub fn fix(&self) -> String {
        match self {
            Finding::NoReplies {
                dest,
                dip,
                routed: false,
                ..
            } => format!(
                "on {}: ip route replace default via {}",
                dest.addr,
                dip.map_or("<DIP>".to_string(), |d| d.to_string())
            ),
            Finding::NoReplies {
                service,
                dest,
                dip,
                routed: true,
                ..
            } => format!(
                "on {}: ip addr add {}/32 dev lo; ip route replace default via {}",
                dest.addr,
                service_addr(service).map_or("<VIP>".to_string(), |a| a.to_string()),
                dip.map_or("<DIP>".to_string(), |d| d.to_string())
            ),
            Finding::Refusing { dest, .. } => format!(
                "start the service on {} port {}, or add the real server with the port it listens on (-r {}:PORT)",
                dest.addr, dest.port, dest.addr
            ),
            Finding::DuplicateAddress(c) => format!(
                "give every real server its own address; the host with MAC {} must not use {}",
                c.second, c.addr
            ),
            Finding::Unreachable { dest, .. } => format!(
                "check the link and address of {} (ip -br addr on it) and that it is in the DIP's subnet",
                dest.addr
            ),
            Finding::VipInArp(c) => format!(
                "on the host with MAC {}: sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2",
                c.mac
            ),
        }
    }
}

/// The address of an address-and-port service (none for a firewall mark).
fn service_addr(service: &ServiceKey) -> Option<IpAddr> {
    match service {
        ServiceKey::Addr { addr, .. } => Some(*addr),
        _ => None,
    }
}

impl Director {
    /// Everything wrong that the data path has noticed, at `now`.
    pub fn diagnose(&self, now: Timestamp) -> Vec<Finding> {
        let mut findings = Vec::new();
        let mut dest_addrs = Vec::new();
        for svc in &self.services().services {
            let dests = svc.lock().dests.to_vec();
            for d in dests {
                let IpAddr::V4(rip) = d.key.addr else {
                    continue;
                };
                dest_addrs.push(rip);
                let (syns, since) = d.health.unanswered();
                if syns >= UNANSWERED_SYNS
                    && now.as_millis().saturating_sub(since) >= UNANSWERED_FOR_MS
                {
                    findings.push(Finding::NoReplies {
                        service: svc.key,
                        dest: d.key,
                        syns,
                        dip: self.config().dip_side.on_link_source(rip),
                        routed: d.forwarding() == FwdMethod::Route,
                    });
                }
                let (refused, last) = d.health.refusals();
                if refused > 0 && now.as_millis().saturating_sub(last) < RECENT_MS {
                    findings.push(Finding::Refusing {
                        service: svc.key,
                        dest: d.key,
                        refused,
                    });
                }
                if self.neighbour_table(Side::Dip).is_unreachable(rip, now) {
                    findings.push(Finding::Unreachable {
                        service: svc.key,
                        dest: d.key,
                    });
                }
            }
        }
        for c in self
            .neighbour_table(Side::Dip)
            .conflicts(now, crate::neigh::CONFLICT_MEMORY_MS)
        {
            if dest_addrs.contains(&c.addr) {
                findings.push(Finding::DuplicateAddress(c));
            }
        }
        if let Some(claim) = self.vip_claim() {
            if now.as_millis().saturating_sub(claim.seen.as_millis()) < RECENT_MS {
                findings.push(Finding::VipInArp(claim));
            }
        }
        findings
    }
}
