//! [`RingSocket`] on the lab's link, in both ring formats and in fanout groups.

use std::time::{Duration, Instant};

use super::*;
use crate::socket::{PacketType, RecvBatch, SendBatch};

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn ring_frames_cross_and_never_echo() {
    let lab = Lab::new("ring");
    let other = lab.socket("A");
    let cases = [RingFormat::V3, RingFormat::V2]
        .into_iter()
        .flat_map(|format| [(format, None), (format, Some(0x4d51))]);
    for (format, group) in cases {
        let a = lab.ring_as("A", group, format);
        let b = lab.ring_as("B", group, format);
        let payload = format!("ring {format:?} {group:?}");
        let frame = udp_frame(&lab, 9, payload.as_bytes(), Csum::Full);
        a.send(&Offload::NONE, &frame).unwrap();
        let mut buf = vec![0u8; 65536];
        let got = recv_matching(&b, &mut buf, |f| f == frame.as_slice())
            .unwrap_or_else(|| panic!("B's ring gets A's frame (fanout {group:?})"));
        assert_eq!(got.pkttype, PacketType::Host);
        assert!(!got.truncated);
        // A batch send too; and neither those nor what another socket of this host
        // sends (as the kernel's own traffic) comes back to A's ring. The kernel never
        // loops a socket's (or its group's) own sends back; the other socket's frames are
        // what PACKET_FANOUT_FLAG_IGNORE_OUTGOING is for.
        let mut send = SendBatch::new(4);
        let frames = [frame.as_slice(); 3].map(|f| (Offload::NONE, f));
        assert_eq!(a.send_batch(&mut send, frames).unwrap(), 3);
        other.send(&Offload::NONE, &frame).unwrap();
        assert!(
            !sees_within(&a, Duration::from_millis(300), |f| f == frame.as_slice()),
            "A's ring read back a frame this host sent (fanout {group:?})"
        );
        assert_eq!(a.stats().outgoing_skipped, 0, "the kernel filtered them");
        let mut batch = RecvBatch::new(8);
        let mut bufs: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; 2048]).collect();
        let mut seen = 0;
        let deadline = Instant::now() + WAIT;
        while seen < 4 && Instant::now() < deadline {
            let n = b.recv_batch(&mut batch, &mut bufs, WAIT).unwrap();
            seen += (0..n)
                .filter(|&i| bufs[i][..batch.received()[i].len] == frame[..])
                .count();
        }
        assert_eq!(
            seen, 4,
            "the batch and the other socket's frame crossed (fanout {group:?})"
        );
    }
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn ring_gets_gso_super_frames_whole() {
    let lab = Lab::new("rgso");
    tcp_write_arrives_as_super_frames(&lab, &lab.ring("B", Some(0x4d52)), 5555, 60_000);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn v2_ring_gets_gso_super_frames_whole() {
    let lab = Lab::new("r2gso");
    let b = lab.ring_as("B", Some(0x4d54), RingFormat::V2);
    tcp_write_arrives_as_super_frames(&lab, &b, 5556, 60_000);
}

#[test]
#[ignore = "needs root and network namespaces: scripts/test.sh runs it"]
fn fanout_group_splits_flows_and_keeps_each_whole() {
    let lab = Lab::new("fan");
    let a = lab.socket("A");
    let members = [lab.ring("B", Some(0x4d53)), lab.ring("B", Some(0x4d53))];
    const FLOWS: u16 = 64;
    // Two frames per flow (the UDP destination port names the flow).
    for round in 0..2u8 {
        for port in 1000..1000 + FLOWS {
            a.send(&Offload::NONE, &udp_frame(&lab, port, &[round], Csum::Full))
                .unwrap();
        }
    }
    let mut owner: std::collections::HashMap<u16, (usize, u8)> = Default::default();
    let mut buf = vec![0u8; 2048];
    for (i, member) in members.iter().enumerate() {
        while let Some(got) = member.recv(&mut buf, Duration::from_millis(300)).unwrap() {
            let f = &buf[..got.len];
            if f.len() < 43 || f[23] != 17 || f[30..34] != IP_NOBODY.octets() {
                continue;
            }
            let port = u16::from_be_bytes([f[36], f[37]]);
            let entry = owner.entry(port).or_insert((i, 0));
            assert_eq!(entry.0, i, "flow {port} reached both members");
            entry.1 += 1;
        }
    }
    assert_eq!(owner.len(), usize::from(FLOWS), "every flow arrived");
    assert!(owner.values().all(|&(_, n)| n == 2), "{owner:?}");
    let first = owner.values().filter(|&&(m, _)| m == 0).count();
    eprintln!("measured: member 0 got {first} of {FLOWS} flows");
    assert!(
        first > 0 && first < usize::from(FLOWS),
        "the flows were split"
    );
}
