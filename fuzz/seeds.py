#!/usr/bin/python3
"""Writes the seed corpus: real frames of the seed lab, addressed as the fuzz harness
(src/lib.rs) has it set up, so that the fuzzer starts from inputs that reach deep.

    /usr/bin/python3 fuzz/seeds.py      (needs python3-scapy)
"""
import os

from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, raw

VIP_MAC, DIP_MAC = "02:d1:00:00:00:01", "02:d1:00:00:00:02"
CLIENT_MAC, RS2_MAC = "02:c1:00:00:00:65", "02:5e:00:00:00:09"
CLIENT, VIP, DIP, RS1, RS2 = "192.168.0.101", "192.168.0.10", "192.168.100.10", "192.168.100.7", "192.168.100.9"
ESTABLISHED, UDP_PORT, FRAGMENT_IDENT = 40000, 5000, 0x4242

to_vip = Ether(src=CLIENT_MAC, dst=VIP_MAC)
to_dip = Ether(src=RS2_MAC, dst=DIP_MAC)

vip = {
    "arp_request": Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
    / ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT, pdst=VIP),
    "tcp_syn_new": to_vip / IP(src=CLIENT, dst=VIP) / TCP(sport=40002, dport=80, flags="S", seq=1000,
                                                          options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]),
    "tcp_syn_persistent": to_vip / IP(src=CLIENT, dst=VIP) / TCP(sport=40003, dport=443, flags="S"),
    "tcp_data_established": to_vip / IP(src=CLIENT, dst=VIP)
    / TCP(sport=ESTABLISHED, dport=80, flags="PA", seq=1001, ack=2)
    / Raw(b"GET / HTTP/1.1\r\nHost: 192.168.0.10\r\n\r\n"),
    "tcp_fin_established": to_vip / IP(src=CLIENT, dst=VIP) / TCP(sport=ESTABLISHED, dport=80, flags="FA"),
    "udp_new": to_vip / IP(src=CLIENT, dst=VIP) / UDP(sport=5001, dport=7) / Raw(b"ping"),
    "udp_established": to_vip / IP(src=CLIENT, dst=VIP) / UDP(sport=UDP_PORT, dport=7) / Raw(b"ping"),
    "udp_later_fragment": to_vip / IP(src=CLIENT, dst=VIP, id=FRAGMENT_IDENT, flags=0, frag=3, proto=17)
    / Raw(b"\x5a" * 16),
    "icmp_frag_needed_about_established": to_vip / IP(src=CLIENT, dst=VIP)
    / ICMP(type=3, code=4, nexthopmtu=1400)
    / IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=ESTABLISHED, flags="SA"),
    "tcp_syn_ttl1": to_vip / IP(src=CLIENT, dst=VIP, ttl=1) / TCP(sport=40004, dport=80, flags="S"),
}

dip = {
    "arp_reply_rs1": Ether(src="02:5e:00:00:00:07", dst=DIP_MAC)
    / ARP(op=2, hwsrc="02:5e:00:00:00:07", psrc=RS1, hwdst=DIP_MAC, pdst=DIP),
    "tcp_syn_ack_established": to_dip / IP(src=RS2, dst=CLIENT) / TCP(sport=80, dport=ESTABLISHED, flags="SA"),
    "tcp_data_established": to_dip / IP(src=RS2, dst=CLIENT)
    / TCP(sport=80, dport=ESTABLISHED, flags="PA", seq=2, ack=1040)
    / Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\nRS2 192.168.100.9\n"),
    "tcp_rst_established": to_dip / IP(src=RS2, dst=CLIENT) / TCP(sport=80, dport=ESTABLISHED, flags="R"),
    "udp_reply": to_dip / IP(src=RS2, dst=CLIENT) / UDP(sport=7, dport=UDP_PORT) / Raw(b"RS2 ping"),
    "icmp_port_unreachable_about_established": to_dip / IP(src=RS2, dst=CLIENT)
    / ICMP(type=3, code=3)
    / IP(src=CLIENT, dst=RS2) / TCP(sport=ESTABLISHED, dport=80, flags="A"),
    "tcp_ttl1_established": to_dip / IP(src=RS2, dst=CLIENT, ttl=1) / TCP(sport=80, dport=ESTABLISHED, flags="A"),
}

ROGUE_MAC = "02:66:00:00:00:66"


def records(*frames):
    """One input of handle_frames_interleaved: (side, frame) records, side 0 VIP, 1 DIP;
    bit 1 of the tag lets time pass (the seconds in the tag's upper bits)."""
    out = b""
    for tag, frame in frames:
        data = raw(frame)
        out += bytes([tag]) + len(data).to_bytes(2, "little") + data
    return out


VIP_SIDE, DIP_SIDE, LATER = 0, 1, 2 | (31 << 2)
interleaved = {
    # The client claims RS2's address every way, then a connection that RS2 serves.
    "client_claims_rs2": records(
        (VIP_SIDE, Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLIENT_MAC, psrc=RS2, pdst=VIP)),
        (VIP_SIDE, Ether(src=CLIENT_MAC, dst=VIP_MAC) / ARP(op=2, hwsrc=CLIENT_MAC, psrc=RS2, hwdst=VIP_MAC, pdst=VIP)),
        (VIP_SIDE, vip["tcp_syn_new"]),
        (DIP_SIDE, to_dip / IP(src=RS2, dst=CLIENT) / TCP(sport=80, dport=40002, flags="SA")),
    ),
    # A rogue on the real servers' segment claims RS2 and the client, then RS2 answers.
    "rogue_claims_rs2": records(
        (DIP_SIDE, Ether(src=ROGUE_MAC, dst=DIP_MAC) / ARP(op=2, hwsrc=ROGUE_MAC, psrc=RS2, hwdst=DIP_MAC, pdst=DIP)),
        (DIP_SIDE, Ether(src=ROGUE_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=ROGUE_MAC, psrc=CLIENT, pdst=DIP)),
        (VIP_SIDE, vip["tcp_data_established"]),
        (DIP_SIDE, dip["tcp_data_established"]),
    ),
    # Requesters from many on-link addresses fill the VIP side's table; time passes.
    "requesters_fill_vip_side": records(
        *[(VIP_SIDE if i % 4 else VIP_SIDE | LATER,
           Ether(src="02:c1:00:00:01:%02x" % i, dst="ff:ff:ff:ff:ff:ff")
           / ARP(op=1, hwsrc="02:c1:00:00:01:%02x" % i, psrc="192.168.0.%d" % (120 + i), pdst=VIP))
          for i in range(12)]
    ),
    # First fragments from spoofed sources, then a legitimate datagram's later fragment.
    "fragment_flood": records(
        *[(VIP_SIDE, to_vip / IP(src="10.0.%d.%d" % (i // 250, i % 250 + 1), dst=VIP, id=7, flags="MF")
           / UDP(sport=5000, dport=7, len=60) / Raw(b"\x5a" * 24)) for i in range(14)],
        (VIP_SIDE, vip["udp_later_fragment"]),
    ),
    # SYNs to the persistent service from new sources: templates against the bound.
    "persistent_syns": records(
        *[(VIP_SIDE, to_vip / IP(src="10.1.0.%d" % (i + 1), dst=VIP) / TCP(sport=40100 + i, dport=443, flags="S"))
          for i in range(10)],
        (DIP_SIDE | LATER, dip["udp_reply"]),
    ),
}

here = os.path.dirname(os.path.abspath(__file__))
for target, seeds in [
    ("handle_frame_vip", vip),
    ("handle_frame_dip", dip),
    ("wire_parsers", {**{"vip_" + k: v for k, v in vip.items()}, **{"dip_" + k: v for k, v in dip.items()}}),
]:
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, frame in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(raw(frame))
    print(f"{target}: {len(seeds)} seeds")
d = os.path.join(here, "corpus", "handle_frames_interleaved")
os.makedirs(d, exist_ok=True)
for name, data in interleaved.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
print(f"handle_frames_interleaved: {len(interleaved)} seeds")
