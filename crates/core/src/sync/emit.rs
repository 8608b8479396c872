//! When a master syncs a connection, and what it sends: the kernel's rule with its default
//! sysctls (`sync_threshold` 3, `sync_period` 50, `sync_refresh_period` 0), so that a
//! kernel backup beside a masq master sees the traffic a kernel master would send it.
//!
//! A TCP connection is synced only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and
//! TIME_WAIT; entering any of these but ESTABLISHED syncs it at once; otherwise (and for
//! UDP) it is synced on its client packet number `threshold`, `threshold + period`, … The
//! kernel syncs a persistence template with every client packet of a connection it
//! controls; masq sends it with each sync of such a connection (`director/synced.rs`).
//!
//! The kernel compares the state with the one it last synced; masq compares it with the
//! state before this packet. The two differ only for a connection that leaves a synced
//! state and comes back to it without a packet in between, which TCP's table never does.

use std::net::IpAddr;

use masq_wire::ipv4::PROTO_TCP;
use masq_wire::ipvs_sync::{flags, SyncConn};

use crate::conn::Conn;
use crate::control::FwdMethod;
use crate::proto_state::{ConnState, TimeoutTable};

/// The kernel's `sync_threshold` sysctl pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncThreshold {
    /// The client packet number that first syncs a connection.
    pub threshold: u32,
    /// Then every this many packets (0: only once).
    pub period: u32,
}

impl Default for SyncThreshold {
    fn default() -> Self {
        SyncThreshold {
            threshold: 3,
            period: 50,
        }
    }
}

impl SyncThreshold {
    /// Whether the client packet number `in_pkts` of a connection of `protocol`, which
    /// moved it from `old` to `new`, makes the master sync it.
    pub fn conn_needs_sync(
        &self,
        protocol: u8,
        (old, new): (ConnState, ConnState),
        in_pkts: u32,
    ) -> bool {
        if protocol == PROTO_TCP {
            let synced_state = matches!(
                new,
                ConnState::Established
                    | ConnState::FinWait
                    | ConnState::Close
                    | ConnState::CloseWait
                    | ConnState::TimeWait
            );
            if !synced_state {
                return false;
            }
            if old != new && new != ConnState::Established {
                return true;
            }
        }
        if self.period > 0 {
            in_pkts % self.period == self.threshold
        } else {
            in_pkts == self.threshold
        }
    }
}

/// The state index the protocol carries: the kernel's TCP indices are masq's; its UDP
/// entries have a single state, 0.
pub fn wire_state(state: ConnState) -> u16 {
    match state {
        ConnState::Udp => 0,
        other => other as u16,
    }
}

/// The forwarding method's bits in an entry's flags.
pub fn wire_forwarding(fwd: FwdMethod) -> u32 {
    match fwd {
        FwdMethod::Masq => flags::MASQ,
        FwdMethod::Route => flags::DROUTE,
        FwdMethod::Tunnel => flags::TUNNEL,
        FwdMethod::Local => flags::LOCALNODE,
    }
}

/// The entry a master sends for `conn`: its forwarding method, marked inactive unless its
/// state counts as active, with the timeout its state has here.
pub fn conn_entry(conn: &Conn, timeouts: &TimeoutTable) -> SyncConn {
    let state = conn.state();
    let (client, vaddr, daddr) = (conn.client(), conn.vaddr(), conn.daddr());
    let inactive = if state.is_active() {
        0
    } else {
        flags::INACTIVE
    };
    SyncConn {
        protocol: conn.protocol(),
        flags: wire_forwarding(conn.fwd()) | inactive,
        state: wire_state(state),
        caddr: IpAddr::V4(*client.ip()),
        cport: client.port(),
        vaddr: IpAddr::V4(*vaddr.ip()),
        vport: vaddr.port(),
        daddr: IpAddr::V4(*daddr.ip()),
        dport: daddr.port(),
        fwmark: 0,
        // Timeouts are whole seconds in the table, so this is exact.
        timeout: u32::try_from(timeouts.millis(state) / 1000).unwrap_or(u32::MAX),
        seq: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use masq_wire::ipv4::PROTO_UDP;
    use ConnState::*;

    fn synced(steps: &[(ConnState, ConnState)]) -> Vec<(u32, ConnState)> {
        let t = SyncThreshold::default();
        steps
            .iter()
            .zip(1..)
            .filter(|&(&states, n)| t.conn_needs_sync(PROTO_TCP, states, n))
            .map(|(&(_, new), n)| (n, new))
            .collect()
    }

    /// The capture's short connections: opened, a request, closed by the client. Only
    /// the closing states went out (CLOSE_WAIT, then TIME_WAIT).
    #[test]
    fn a_short_connection_is_synced_as_it_closes() {
        let steps = [
            (None, SynRecv),
            (SynRecv, Established),
            (Established, CloseWait),
            (CloseWait, TimeWait),
        ];
        assert_eq!(synced(&steps), [(3, CloseWait), (4, TimeWait)]);
    }

    /// The capture's held-open connection: synced once, ESTABLISHED, at its third packet.
    #[test]
    fn a_held_connection_is_synced_at_the_threshold_then_every_period() {
        let mut steps = vec![(None, SynRecv), (SynRecv, Established)];
        steps.extend(std::iter::repeat_n((Established, Established), 200));
        let at: Vec<u32> = synced(&steps).iter().map(|&(n, _)| n).collect();
        assert_eq!(at, [3, 53, 103, 153]);
    }

    #[test]
    fn half_open_states_are_never_synced() {
        let t = SyncThreshold::default();
        for state in [SynRecv, SynSent, SynAck, LastAck, Listen, None] {
            assert!(!t.conn_needs_sync(PROTO_TCP, (None, state), 3), "{state:?}");
        }
    }

    #[test]
    fn udp_follows_the_packet_count_only() {
        let t = SyncThreshold::default();
        let at: Vec<u32> = (1..120)
            .filter(|&n| t.conn_needs_sync(PROTO_UDP, (Udp, Udp), n))
            .collect();
        assert_eq!(at, [3, 53, 103]);
        let once = SyncThreshold {
            threshold: 3,
            period: 0,
        };
        assert_eq!(
            (1..200)
                .filter(|&n| once.conn_needs_sync(PROTO_UDP, (Udp, Udp), n))
                .count(),
            1
        );
    }

    /// The capture's held-open connection, as a masq master would send it.
    #[test]
    fn an_established_connection_travels_as_the_kernel_sent_it() {
        use crate::conn::FlowKey;
        use crate::control::{DestKey, DestParams, Protocol, ServiceKey, ServiceParams};
        use crate::dest::Destination;
        use crate::proto_state::{Direction, TcpTable};
        use crate::service::VirtualService;
        use crate::time::Timestamp;
        use masq_wire::ipvs_sync::SyncConn;
        use std::net::{Ipv4Addr, SocketAddrV4};
        use std::sync::Arc;

        let vip = SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 10), 80);
        let rip = SocketAddrV4::new(Ipv4Addr::new(192, 168, 100, 7), 80);
        let client = SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 103), 20003);
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(*vip.ip()),
            port: 80,
        };
        let sched = crate::sched::create("rr", &[]).expect("rr exists");
        let service = Arc::new(VirtualService::new(key, ServiceParams::default(), sched));
        let dest_key = DestKey {
            addr: IpAddr::V4(*rip.ip()),
            port: 80,
        };
        let nat = DestParams {
            fwd: crate::control::FwdMethod::Masq,
            ..DestParams::default()
        };
        let dest = Arc::new(Destination::new(dest_key, &nat));
        let flow = FlowKey {
            protocol: PROTO_TCP,
            src: client,
            dst: vip,
        };
        let conn = Conn::new(flow, rip, service, dest, Option::None, Timestamp::ZERO);
        let timeouts = TimeoutTable::default();
        let (syn, ack) = (0x02, 0x10);
        for (dir, tcp_flags) in [
            (Direction::In, syn),
            (Direction::Out, syn | ack),
            (Direction::In, ack),
        ] {
            conn.on_packet(dir, tcp_flags, &timeouts, TcpTable::Normal, Timestamp::ZERO);
        }
        assert_eq!(conn.state(), Established);
        let sent: SyncConn = conn_entry(&conn, &timeouts);
        assert_eq!(
            (sent.flags, sent.state, sent.timeout, sent.cport, sent.dport),
            (flags::MASQ, 1, 900, 20003, 80)
        );
    }

    #[test]
    fn each_forwarding_method_travels_as_the_kernel_flags_it() {
        use crate::control::FwdMethod::{Local, Masq, Route, Tunnel};
        let wire: Vec<u32> = [Masq, Local, Tunnel, Route]
            .into_iter()
            .map(wire_forwarding)
            .collect();
        assert_eq!(wire, [0, 1, 2, 3]);
    }

    #[test]
    fn udp_travels_as_state_zero() {
        assert_eq!(wire_state(Udp), 0);
        assert_eq!(wire_state(TimeWait), 5);
        assert_eq!(wire_state(CloseWait), 7);
    }
}
