//! The steering program: the XDP program [`steal_program`] assembles, which steals the
//! director's service traffic into the AF_XDP sockets and passes the rest to the kernel.
//! What it steals, side by side, is in the documentation of `crate::xdp`; the maps it
//! reads are described in `maps`.

use super::maps::{LOCAL, RIP, VIP};
use super::XdpSide;
use crate::bpf::asm::{Asm, Reg};
use crate::bpf::{BPF_FUNC_REDIRECT_MAP, XDP_PASS};

// `struct xdp_md` field offsets (include/uapi/linux/bpf.h), and offsets in an untagged
// Ethernet frame carrying IPv4.
const MD_DATA: i16 = 0;
const MD_DATA_END: i16 = 4;
const MD_RX_QUEUE_INDEX: i16 = 16;
const ETH_TYPE_AT: i16 = 12;
const IP_SADDR_AT: i16 = 14 + 12;
const IP_DADDR_AT: i16 = 14 + 16;
const ETH_AND_IP_HDR: i32 = 14 + 20;
const ETH_HDR: i16 = 14;
const IP_FRAG_AT: i16 = 14 + 6;
const IP_PROTO_AT: i16 = 14 + 9;
const IPPROTO_ICMP: i32 = 1;
/// ICMP errors masqd translates for its connections: destination unreachable, source
/// quench, time exceeded (`IcmpPacket::is_error` in `crates/wire/src/icmp.rs`).
const ICMP_ERRORS: [i32; 3] = [3, 4, 11];

/// Jump targets of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    DipSide,
    Icmp,
    Steal,
    Pass,
}

/// The descriptors of the maps a program is built over.
#[derive(Clone, Copy)]
pub(super) struct ProgramMaps {
    /// The `addrs` hash map: address → flags.
    pub addrs: i32,
    /// The `services` hash map: (VIP, port, protocol) → 1.
    pub services: i32,
    /// The XSKMAP: receive queue → AF_XDP socket.
    pub xsks: i32,
}

/// The steal program for `side`, over `maps`. The side is the immediate of one `mov`
/// (r9 = 0 VIP side, 1 DIP side), so both sides are one program text and the verifier
/// checks both paths.
pub(super) fn steal_program(side: XdpSide, maps: ProgramMaps) -> Vec<[u8; 8]> {
    use Label::{DipSide, Icmp, Pass, Steal};
    use Reg::{R0, R1, R10, R2, R3, R4, R5, R6, R7, R8, R9};
    // Multi-byte constants as the program's loads see the wire bytes.
    let ethertype_ipv4 = i32::from(u16::from_ne_bytes([0x08, 0x00]));
    let fragment_offset = i32::from(u16::from_ne_bytes([0x1f, 0xff]));
    let side_imm = match side {
        XdpSide::Vip => 0,
        XdpSide::Dip => 1,
    };
    let mut asm = Asm::<Label>::default();
    asm.mov(R6, R1) // r6 = ctx (struct xdp_md *), kept across helper calls
        .load32(R2, R6, MD_DATA) // r2 = ctx->data: the frame's first byte
        .load32(R3, R6, MD_DATA_END) // r3 = ctx->data_end: one past its last
        .mov(R4, R2) // r4 = data
        .add_imm(R4, ETH_AND_IP_HDR) // r4 = data + 34: end of Ethernet + minimal IPv4
        .jgt(R4, R3, Pass) // shorter frame: pass (the bound the verifier needs)
        .load16(R4, R2, ETH_TYPE_AT) // r4 = EtherType
        .jne_imm(R4, ethertype_ipv4, Pass) // not IPv4 (ARP, IPv6, VLAN): pass
        .load32(R7, R2, IP_SADDR_AT) // r7 = source address, wire order
        .load32(R8, R2, IP_DADDR_AT) // r8 = destination address, wire order
        .mov_imm(R9, side_imm) // r9 = side: the immediate chosen at load time
        .jne_imm(R9, 0, DipSide) // DIP side: go there
        // VIP side: steal when flags(daddr) has VIP…
        .lookup(maps.addrs, R8) // r0 = &addrs[daddr]
        .jeq_imm(R0, 0, Pass) // unknown destination: pass
        .load32(R1, R0, 0) // r1 = flags
        .mov(R2, R1) // r2 = flags
        .and_imm(R2, VIP as i32) // r2 &= VIP
        .jeq_imm(R2, 0, Pass) // not a VIP: pass
        .and_imm(R1, LOCAL as i32) // r1 &= LOCAL
        .jeq_imm(R1, 0, Steal) // a VIP the host does not own: all of it is masqd's
        // …and, for a VIP that is also the host's, only service ports, ICMP errors and
        // later fragments: the kernel keeps its own traffic to that address (ssh, ping).
        .load32(R2, R6, MD_DATA) // r2 = data, again (the call clobbered r2 and r3)
        .load32(R3, R6, MD_DATA_END) // r3 = data_end
        .mov(R4, R2) // r4 = data
        .add_imm(R4, ETH_AND_IP_HDR) // r4 = data + 34
        .jgt(R4, R3, Pass) // (cannot happen; the verifier wants it shown again)
        .load16(R4, R2, IP_FRAG_AT) // r4 = flags and fragment offset
        .and_imm(R4, fragment_offset) // r4 = fragment offset
        .jne_imm(R4, 0, Steal) // a later fragment: masqd follows its datagram
        .load8(R4, R2, IP_PROTO_AT) // r4 = protocol
        .load8(R5, R2, ETH_HDR) // r5 = version and header length
        .and_imm(R5, 0x0f) // r5 = header length in words
        .lsh_imm(R5, 2) // r5 = header length in bytes (at most 60)
        .add(R2, R5) // r2 = data + header length: L4 header at r2 + 14
        .mov(R5, R2) // r5 = r2
        .add_imm(R5, i32::from(ETH_HDR) + 4) // r5 = end of the L4 header's first 4 bytes
        .jgt(R5, R3, Pass) // too short for ports or an ICMP type: pass
        .jeq_imm(R4, IPPROTO_ICMP, Icmp) // ICMP: by type
        .load16(R5, R2, ETH_HDR + 2) // r5 = destination port, wire order
        .store32(R10, -8, R8) // key: VIP…
        .store16(R10, -4, R5) // …port…
        .store8(R10, -2, R4) // …protocol…
        .mov_imm(R5, 0) // r5 = 0
        .store8(R10, -1, R5) // …and a zero byte
        .lookup_stack_key(maps.services, -8) // r0 = &services[(daddr, port, protocol)]
        .jne_imm(R0, 0, Steal) // a service: steal
        .mov_imm(R5, 0) // r5 = 0
        .store16(R10, -4, R5) // the same key with port 0: a service on every port
        .lookup_stack_key(maps.services, -8) // r0 = &services[(daddr, 0, protocol)]
        .jne_imm(R0, 0, Steal) // an every-port service: steal
        .ja(Pass) // the host's own traffic: pass
        .label(Icmp)
        .load8(R5, R2, ETH_HDR) // r5 = ICMP type
        .jeq_imm(R5, ICMP_ERRORS[0], Steal) // errors about connections: steal
        .jeq_imm(R5, ICMP_ERRORS[1], Steal)
        .jeq_imm(R5, ICMP_ERRORS[2], Steal)
        .ja(Pass) // echo and the rest: the kernel answers
        // DIP side: steal when flags(saddr) has RIP and flags(daddr) lacks LOCAL.
        .label(DipSide)
        .lookup(maps.addrs, R7) // r0 = &addrs[saddr]
        .jeq_imm(R0, 0, Pass) // unknown source: pass
        .load32(R1, R0, 0) // r1 = flags
        .and_imm(R1, RIP as i32) // r1 &= RIP
        .jeq_imm(R1, 0, Pass) // not from a real server: pass
        .lookup(maps.addrs, R8) // r0 = &addrs[daddr]
        .jeq_imm(R0, 0, Steal) // destination unknown, so not local: steal
        .load32(R1, R0, 0) // r1 = flags
        .and_imm(R1, LOCAL as i32) // r1 &= LOCAL
        .jne_imm(R1, 0, Pass) // to this host (a health-check reply): pass
        // Steal: redirect to the AF_XDP socket of the queue the frame arrived on.
        .label(Steal)
        .load_map(R1, maps.xsks) // r1 = &xsks
        .load32(R2, R6, MD_RX_QUEUE_INDEX) // r2 = ctx->rx_queue_index: the map key
        .mov_imm(R3, XDP_PASS) // r3 = XDP_PASS: the action when no socket is there
        .call(BPF_FUNC_REDIRECT_MAP) // r0 = bpf_redirect_map(r1, r2, r3)
        .exit() // return r0 (XDP_REDIRECT, or XDP_PASS)
        .label(Pass)
        .mov_imm(R0, XDP_PASS) // r0 = XDP_PASS: the kernel takes the frame
        .exit(); // return r0
    asm.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::asm::{BPF_CALL, BPF_EXIT, BPF_JMP};

    #[test]
    fn program_jumps_stay_inside_and_both_sides_differ_only_in_the_side() {
        let maps = ProgramMaps {
            addrs: 3,
            services: 4,
            xsks: 5,
        };
        let vip = steal_program(XdpSide::Vip, maps);
        let dip = steal_program(XdpSide::Dip, maps);
        assert_eq!(vip.len(), dip.len());
        let differ: Vec<usize> = (0..vip.len()).filter(|&i| vip[i] != dip[i]).collect();
        assert_eq!(differ.len(), 1, "only the side immediate differs");
        for (at, insn) in vip.iter().enumerate() {
            let class = insn[0] & 0x07;
            let op = insn[0] & 0xf0;
            if class == BPF_JMP && op != BPF_CALL && op != BPF_EXIT {
                let off = i16::from_ne_bytes([insn[2], insn[3]]);
                let target = at as isize + 1 + off as isize;
                assert!(
                    target > at as isize && (target as usize) < vip.len(),
                    "{at}"
                );
            }
        }
        assert_eq!(vip.last().unwrap()[0], BPF_JMP | BPF_EXIT);
    }
}
