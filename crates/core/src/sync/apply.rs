//! What a backup takes from one entry of a message it could read: the connection or
//! template it names, checked against what masq's table can hold. Finding the service and
//! the real server, and entering it in the table, is the director's part
//! (`director/synced.rs`).

use std::net::{IpAddr, SocketAddrV4};

use masq_wire::ipv4::{PROTO_TCP, PROTO_UDP};
use masq_wire::ipvs_sync::{flags, SyncEntry};

use super::counters::EntryRefusal;
use crate::control::FwdMethod;
use crate::proto_state::ConnState;

/// A synced entry a backup can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncedEntry {
    pub protocol: u8,
    /// For a template, the client network (port 0).
    pub client: SocketAddrV4,
    pub vaddr: SocketAddrV4,
    pub daddr: SocketAddrV4,
    pub state: ConnState,
    /// What the master said, in milliseconds; `None` (the master sent 0) takes the
    /// backup's own timeout for the state, as the kernel does.
    pub timeout_ms: Option<u64>,
    pub template: bool,
    /// How the master forwards it; the backup's real server must be forwarded the same
    /// way.
    pub fwd: FwdMethod,
}

/// Reads `entry`, or says why a backup cannot apply it.
///
/// # Errors
/// The [`EntryRefusal`] that applies, checked in the order listed there.
pub fn read_entry(entry: &SyncEntry<'_>) -> Result<SyncedEntry, EntryRefusal> {
    let (IpAddr::V4(caddr), IpAddr::V4(vaddr), IpAddr::V4(daddr)) =
        (entry.caddr(), entry.vaddr(), entry.daddr())
    else {
        return Err(EntryRefusal::Ipv6);
    };
    // masq forwards by NAT, direct routing and tunnelling; a local entry has no
    // connection here to become. Whether the backup's real server is forwarded the same
    // way is checked where the entry is applied.
    let fwd = match entry.flags() & flags::FWD_MASK {
        flags::MASQ => FwdMethod::Masq,
        flags::DROUTE => FwdMethod::Route,
        flags::TUNNEL => FwdMethod::Tunnel,
        _ => return Err(EntryRefusal::Forwarding),
    };
    let protocol = entry.protocol();
    let template = entry.flags() & flags::TEMPLATE != 0;
    let state = match protocol {
        // A template's state is the kernel's "assured" mark, not a TCP state.
        PROTO_TCP if template => ConnState::None,
        PROTO_TCP => tcp_state(entry.state())?,
        PROTO_UDP => ConnState::Udp,
        _ => return Err(EntryRefusal::Protocol),
    };
    if entry.fwmark() != 0 {
        return Err(EntryRefusal::Fwmark);
    }
    if entry.has_unknown_mandatory_option() {
        return Err(EntryRefusal::UnknownOption);
    }
    let timeout_ms = match entry.timeout() {
        0 => None,
        secs => Some(u64::from(secs) * 1000),
    };
    Ok(SyncedEntry {
        protocol,
        client: SocketAddrV4::new(caddr, entry.cport()),
        vaddr: SocketAddrV4::new(vaddr, entry.vport()),
        daddr: SocketAddrV4::new(daddr, entry.dport()),
        state,
        timeout_ms,
        template,
        fwd,
    })
}

/// A TCP state by the kernel's index (masq's discriminants are the kernel's); UDP's own
/// state is not one of them.
fn tcp_state(index: u16) -> Result<ConnState, EntryRefusal> {
    ConnState::ALL
        .get(usize::from(index))
        .copied()
        .filter(|&s| s != ConnState::Udp)
        .ok_or(EntryRefusal::State)
}

#[cfg(test)]
mod tests {
    use super::*;
    use masq_wire::ipvs_sync::{MessageWriter, SyncConn, SyncMessage};
    use std::net::Ipv4Addr;

    fn conn() -> SyncConn {
        let v4 = |d| IpAddr::V4(Ipv4Addr::new(192, 168, 0, d));
        SyncConn {
            protocol: PROTO_TCP,
            flags: flags::MASQ,
            state: 1,
            caddr: v4(103),
            cport: 20003,
            vaddr: v4(10),
            vport: 80,
            daddr: IpAddr::V4(Ipv4Addr::new(192, 168, 100, 7)),
            dport: 80,
            fwmark: 0,
            timeout: 900,
            seq: None,
        }
    }

    fn read(conn: &SyncConn) -> Result<SyncedEntry, EntryRefusal> {
        let mut buf = [0u8; 128];
        let mut writer = MessageWriter::new(&mut buf, 0);
        writer.push(conn).expect("fits");
        let len = writer.finish();
        let message = SyncMessage::new_checked(&buf[..len]).expect("readable");
        let entry = message.entries().next().expect("one entry");
        read_entry(&entry)
    }

    #[test]
    fn an_established_connection_reads_with_its_timeout() {
        let e = read(&conn()).expect("applicable");
        assert_eq!(
            (e.state, e.timeout_ms, e.template, e.client.port()),
            (ConnState::Established, Some(900_000), false, 20003)
        );
        let zero = read(&SyncConn {
            timeout: 0,
            ..conn()
        });
        assert_eq!(zero.map(|e| e.timeout_ms), Ok(None));
    }

    #[test]
    fn a_template_keeps_no_tcp_state() {
        let t = SyncConn {
            flags: flags::TEMPLATE | flags::INACTIVE,
            state: 1,
            cport: 0,
            ..conn()
        };
        let e = read(&t).expect("applicable");
        assert_eq!((e.template, e.state), (true, ConnState::None));
    }

    #[test]
    fn refuses_what_the_table_cannot_hold() {
        let cases = [
            (
                SyncConn {
                    flags: flags::LOCALNODE,
                    ..conn()
                },
                EntryRefusal::Forwarding,
            ),
            (
                SyncConn {
                    protocol: 132,
                    ..conn()
                },
                EntryRefusal::Protocol,
            ),
            (
                SyncConn {
                    state: 11,
                    ..conn()
                },
                EntryRefusal::State,
            ),
            (
                SyncConn {
                    fwmark: 7,
                    ..conn()
                },
                EntryRefusal::Fwmark,
            ),
            (
                SyncConn {
                    caddr: "::1".parse().unwrap(),
                    vaddr: "::2".parse().unwrap(),
                    daddr: "::3".parse().unwrap(),
                    ..conn()
                },
                EntryRefusal::Ipv6,
            ),
        ];
        for (c, why) in cases {
            assert_eq!(read(&c), Err(why), "{c:?}");
        }
    }
}
