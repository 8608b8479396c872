//! IPVS's connection states for TCP and UDP (`ip_vs_proto_tcp.c`, `ip_vs_proto_udp.c`).
//!
//! The director does not run TCP; it watches the flags go by in both directions and keeps
//! the same coarse state the kernel keeps, because the state decides three things users
//! see: how long an idle entry lives, whether it counts as ActiveConn or InActConn, and
//! the state column of `ipvsadm -c`. The table is the kernel's normal (not secure_tcp)
//! table, row by row.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::control::Timeouts;
use masq_wire::tcp::flags;

/// A connection's state. The discriminants are the kernel's indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
    /// The single state of a UDP entry.
    Udp = 11,
}

impl ConnState {
    /// All states, by index.
    pub const ALL: [ConnState; 12] = [
        ConnState::None,
        ConnState::Established,
        ConnState::SynSent,
        ConnState::SynRecv,
        ConnState::FinWait,
        ConnState::TimeWait,
        ConnState::Close,
        ConnState::CloseWait,
        ConnState::LastAck,
        ConnState::Listen,
        ConnState::SynAck,
        ConnState::Udp,
    ];

    /// The state with kernel index `i` (as stored in an atomic).
    pub fn from_index(i: u8) -> ConnState {
        Self::ALL
            .get(usize::from(i))
            .copied()
            .unwrap_or(ConnState::None)
    }

    /// The name `/proc/net/ip_vs_conn` and `ipvsadm -c` print.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
        }
    }

    /// Whether a connection in this state counts in ActiveConn (otherwise InActConn).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            ConnState::Established | ConnState::SynSent | ConnState::SynRecv | ConnState::SynAck
        )
    }
}

/// Which way a packet travels relative to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to real server (the kernel's INPUT).
    In,
    /// Real server to client (OUTPUT; only a NAT director sees these).
    Out,
}

use ConnState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

type Row = [ConnState; 11];

/// Which of the kernel's two TCP tables applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpTable {
    /// The normal table.
    Normal,
    /// `secure_tcp`'s table, used while the connection table is under pressure: a client
    /// alone cannot move an entry to ESTABLISHED (and its 15-minute timeout); the real
    /// server's answer must be seen first.
    Secure,
}
// The kernel's `tcp_states` (ip_vs_proto_tcp.c). Columns: NONE ES SS SR FW TW CL CW LA LI SA.
const IN_SYN: Row = [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR];
const IN_FIN: Row = [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW];
const IN_ACK: Row = [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES];
const IN_RST: Row = [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR];
const OUT_SYN: Row = [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR];
const OUT_FIN: Row = [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW];
const OUT_ACK: Row = [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES];
const OUT_RST: Row = [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL];

// secure_tcp's rows where they differ from the normal ones (the kernel's `tcp_states_dos`).
const SECURE_IN_SYN: Row = [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA];
const SECURE_IN_FIN: Row = [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA];
const SECURE_IN_ACK: Row = [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA];
const SECURE_OUT_SYN: Row = [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA];

/// The TCP state after a segment with `tcp_flags` went `dir` in state `state`.
pub fn tcp_transition(
    state: ConnState,
    dir: Direction,
    tcp_flags: u8,
    table: TcpTable,
) -> ConnState {
    let column = (state as usize).min(10);
    if table == TcpTable::Secure {
        let row = match (dir, event(tcp_flags)) {
            (Direction::In, Some(Event::Syn)) => Some(&SECURE_IN_SYN),
            (Direction::In, Some(Event::Fin)) => Some(&SECURE_IN_FIN),
            (Direction::In, Some(Event::Ack)) => Some(&SECURE_IN_ACK),
            (Direction::Out, Some(Event::Syn)) => Some(&SECURE_OUT_SYN),
            _ => None,
        };
        if let Some(row) = row {
            return row[column];
        }
    }
    let row = match (dir, event(tcp_flags)) {
        (_, None) => return ConnState::Close,
        (Direction::In, Some(Event::Syn)) => &IN_SYN,
        (Direction::In, Some(Event::Fin)) => &IN_FIN,
        (Direction::In, Some(Event::Ack)) => &IN_ACK,
        (Direction::In, Some(Event::Rst)) => &IN_RST,
        (Direction::Out, Some(Event::Syn)) => &OUT_SYN,
        (Direction::Out, Some(Event::Fin)) => &OUT_FIN,
        (Direction::Out, Some(Event::Ack)) => &OUT_ACK,
        (Direction::Out, Some(Event::Rst)) => &OUT_RST,
    };
    row[column]
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Syn,
    Fin,
    Ack,
    Rst,
}

/// The kernel's `tcp_state_idx`: first match of RST, SYN, FIN, ACK; `None` for no flags.
fn event(tcp_flags: u8) -> Option<Event> {
    if tcp_flags & flags::RST != 0 {
        Some(Event::Rst)
    } else if tcp_flags & flags::SYN != 0 {
        Some(Event::Syn)
    } else if tcp_flags & flags::FIN != 0 {
        Some(Event::Fin)
    } else if tcp_flags & flags::ACK != 0 {
        Some(Event::Ack)
    } else {
        None
    }
}

/// Per-state timeouts in seconds, shared by all workers; `--set` changes three of them.
#[derive(Debug)]
pub struct TimeoutTable {
    secs: [AtomicU32; 12],
}

/// Defaults of `ip_vs_proto_tcp.c` and `ip_vs_proto_udp.c`, by state index.
const DEFAULT_SECS: [u32; 12] = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120, 300];

impl Default for TimeoutTable {
    fn default() -> Self {
        TimeoutTable {
            secs: DEFAULT_SECS.map(AtomicU32::new),
        }
    }
}

impl TimeoutTable {
    /// Timeout of `state` in milliseconds.
    pub fn millis(&self, state: ConnState) -> u64 {
        u64::from(self.secs[state as usize].load(Relaxed)) * 1000
    }

    /// `--set tcp tcpfin udp`: ESTABLISHED, FIN_WAIT and UDP; a 0 leaves that one alone.
    pub fn set(&self, t: Timeouts) {
        for (state, value) in [
            (ConnState::Established, t.tcp),
            (ConnState::FinWait, t.tcp_fin),
            (ConnState::Udp, t.udp),
        ] {
            if value != 0 {
                self.secs[state as usize].store(value, Relaxed);
            }
        }
    }

    /// What `-L --timeout` shows.
    pub fn get(&self) -> Timeouts {
        let s = |state: ConnState| self.secs[state as usize].load(Relaxed);
        Timeouts {
            tcp: s(ConnState::Established),
            tcp_fin: s(ConnState::FinWait),
            udp: s(ConnState::Udp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::{ACK, FIN, RST, SYN};

    fn walk(steps: &[(Direction, u8)]) -> Vec<ConnState> {
        let mut state = ConnState::None;
        steps
            .iter()
            .map(|&(d, f)| {
                state = tcp_transition(state, d, f, TcpTable::Normal);
                state
            })
            .collect()
    }

    #[test]
    fn client_closes_first() {
        use Direction::{In, Out};
        // A typical NAT flow: SYN -> SYN_RECV, SYN+ACK stays, ACK -> ESTABLISHED,
        // client FIN -> CLOSE_WAIT, server FIN -> TIME_WAIT, last ACK stays TIME_WAIT.
        let states = walk(&[
            (In, SYN),
            (Out, SYN | ACK),
            (In, ACK),
            (In, FIN | ACK),
            (Out, FIN | ACK),
            (In, ACK),
        ]);
        assert_eq!(
            states,
            vec![
                ConnState::SynRecv,
                ConnState::SynRecv,
                ConnState::Established,
                ConnState::CloseWait,
                ConnState::TimeWait,
                ConnState::TimeWait
            ]
        );
    }

    #[test]
    fn server_closes_first_and_resets() {
        use Direction::{In, Out};
        let states = walk(&[(In, SYN), (In, ACK), (Out, FIN | ACK), (In, FIN | ACK)]);
        assert_eq!(states[2], ConnState::FinWait);
        assert_eq!(states[3], ConnState::TimeWait);
        assert_eq!(
            tcp_transition(ConnState::Established, In, RST, TcpTable::Normal),
            ConnState::Close
        );
        assert_eq!(
            tcp_transition(ConnState::Established, Out, RST | ACK, TcpTable::Normal),
            ConnState::Close
        );
        assert_eq!(
            tcp_transition(ConnState::Established, In, 0, TcpTable::Normal),
            ConnState::Close
        );
    }

    #[test]
    fn under_secure_tcp_only_the_server_opens_the_way_to_established() {
        use Direction::{In, Out};
        let walk_secure = |steps: &[(Direction, u8)]| {
            let mut state = ConnState::None;
            for &(d, f) in steps {
                state = tcp_transition(state, d, f, TcpTable::Secure);
            }
            state
        };
        // A spoofed client's SYN then ACK: stays half-open (60 s), never ESTABLISHED.
        assert_eq!(walk_secure(&[(In, SYN), (In, ACK)]), ConnState::SynRecv);
        // With the server's SYN+ACK seen, the handshake completes when the server ACKs.
        assert_eq!(
            walk_secure(&[(In, SYN), (Out, SYN | ACK)]),
            ConnState::SynAck
        );
        assert_eq!(
            walk_secure(&[(In, SYN), (Out, SYN | ACK), (In, ACK), (Out, ACK)]),
            ConnState::Established
        );
    }

    #[test]
    fn active_states_are_the_kernels() {
        let active: Vec<_> = ConnState::ALL.iter().filter(|s| s.is_active()).collect();
        assert_eq!(
            active,
            vec![
                &ConnState::Established,
                &ConnState::SynSent,
                &ConnState::SynRecv,
                &ConnState::SynAck
            ]
        );
    }

    #[test]
    fn set_changes_only_three_timeouts() {
        let t = TimeoutTable::default();
        assert_eq!(t.get(), Timeouts::default());
        t.set(Timeouts {
            tcp: 60,
            tcp_fin: 0,
            udp: 5,
        });
        assert_eq!(t.millis(ConnState::Established), 60_000);
        assert_eq!(t.millis(ConnState::FinWait), 120_000);
        assert_eq!(t.millis(ConnState::TimeWait), 120_000);
        assert_eq!(t.millis(ConnState::Udp), 5_000);
    }
}
