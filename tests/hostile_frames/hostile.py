# The hostile frames of tests/hostile_frames: the corpus (HOSTILE_PY in corpus.rs says
# what argv[1] holds and how the test and this script take turns).
import json, os, socket, struct, sys, time
from scapy.all import ARP, IP, TCP, UDP, Ether, IPOption_NOP, IPOption_RR, Raw, raw

cfg = json.loads(sys.argv[1])
SRC, DST = cfg["src_mac"], cfg["dst_mac"]
CLIENT, VIP, RS = "192.168.0.101", "192.168.0.10", cfg["rs_ip"]
HELD, N = cfg["held_port"], cfg["count"]

def ether(t=0x0800):
    return Ether(src=SRC, dst=DST, type=t)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def spoil(frame, at):
    """Flips bits of the checksum at byte `at`: never right afterwards, and never 0 (which
    in UDP means "no checksum")."""
    b = bytearray(frame)
    for flip in (0x5AA5, 0x0F0F):
        value = struct.unpack("!H", frame[at:at + 2])[0] ^ flip
        if value:
            break
    b[at:at + 2] = struct.pack("!H", value)
    return bytes(b)

def icmp_error(src, dst, t, code, rest, quote, bad_sum=False, **ip):
    body = bytes([t, code, 0, 0]) + struct.pack("!I", rest) + quote
    s = csum(body)
    if bad_sum:
        s ^= 0x5AA5
    body = body[:2] + struct.pack("!H", s) + body[4:]
    return raw(ether() / IP(src=src, dst=dst, proto=1, **ip) / Raw(body))

def tcp(p, flags="S", payload=b"", src=CLIENT, dst=VIP, sport=None, dport=80, **ip):
    return raw(ether() / IP(src=src, dst=dst, **ip)
               / TCP(sport=p if sport is None else sport, dport=dport, flags=flags, seq=1000 + p, window=64240)
               / Raw(payload))

def udp(p, udp_len=None, payload=b"ping", src=CLIENT, dst=VIP, **kw):
    return raw(ether() / IP(src=src, dst=dst) / UDP(sport=p, dport=7, len=udp_len, **kw) / Raw(payload))

E, I = 14, 34  # offsets of the IP header and of a 20-byte header's payload
# The packet masqd sent the client about the held connection, and the one it sent the RS.
to_client = raw(IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=HELD, flags="A", seq=7))[:28]
to_rs = raw(IP(src=CLIENT, dst=RS) / TCP(sport=HELD, dport=80, flags="A", seq=7))[:28]

KINDS = {
    "eth_header_only_ipv4": lambda p: raw(ether()),
    "eth_header_only_arp": lambda p: raw(ether(0x0806)),
    "arp_truncated": lambda p: raw(ether(0x0806) / ARP(op=1, hwsrc=SRC, psrc=CLIENT, pdst=VIP))[:E + 20],
    "arp_other_hardware": lambda p: raw(ether(0x0806) / ARP(hwtype=6, op=1, hwsrc=SRC, psrc=CLIENT, pdst=VIP)),
    "ip_truncated": lambda p: tcp(p)[:E + 12],
    "ip_ihl_below_5": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, ihl=4) / TCP(sport=p, dport=80, flags="S")),
    "ip_ihl_beyond_length": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, ihl=15, len=40) / TCP(sport=p, dport=80, flags="S")),
    "ip_total_length_beyond_frame": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, len=140) / TCP(sport=p, dport=80, flags="S")),
    "ip_total_length_cuts_tcp": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, len=30) / TCP(sport=p, dport=80, flags="S")),
    "ip_trailing_padding": lambda p: tcp(p) + b"\xee" * 40,
    "ip_bad_checksum": lambda p: spoil(tcp(p), E + 10),
    "ip_options_syn": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, options=[IPOption_NOP(), IPOption_RR(routers=["0.0.0.0"] * 2)])
                                 / TCP(sport=p, dport=80, flags="S", seq=1000 + p)),
    "tcp_truncated": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, proto=6) / Raw(raw(TCP(sport=p, dport=80, flags="S"))[:10])),
    "tcp_data_offset_below_5": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP) / TCP(sport=p, dport=80, flags="S", dataofs=4)),
    "tcp_data_offset_beyond_segment": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP) / TCP(sport=p, dport=80, flags="S", dataofs=15)),
    "tcp_bad_checksum_syn": lambda p: spoil(tcp(p), I + 16),
    "tcp_no_flags": lambda p: tcp(p, flags=""),
    "tcp_syn_fin": lambda p: tcp(p, flags="SF"),
    "udp_truncated": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, proto=17) / Raw(struct.pack("!HH", p, 7))),
    "udp_length_beyond_datagram": lambda p: udp(p, udp_len=100),
    "udp_length_below_8": lambda p: udp(p, udp_len=4),
    "udp_bad_checksum": lambda p: spoil(udp(p), I + 6),
    "ttl_1_syn": lambda p: tcp(p, ttl=1),
    "ttl_0_syn": lambda p: tcp(p, ttl=0),
    "fragment_orphan": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, proto=17, id=p, frag=8) / Raw(b"\x5a" * 16)),
    "fragment_tiny_first": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, proto=6, id=p, flags="MF")
                                      / Raw(raw(TCP(sport=p, dport=80, flags="S"))[:8])),
    "fragment_of_icmp_error": lambda p: icmp_error(CLIENT, VIP, 3, 1, p, to_client, id=p, flags="MF"),
    "icmp_error_about_connection": lambda p: icmp_error(CLIENT, VIP, 3, 1, p, to_client),
    "icmp_error_bad_checksum": lambda p: icmp_error(CLIENT, VIP, 3, 1, p, to_client, bad_sum=True),
    "icmp_error_bad_ip_checksum": lambda p: spoil(icmp_error(CLIENT, VIP, 3, 1, p, to_client), E + 10),
    "icmp_error_quoting_garbage": lambda p: icmp_error(CLIENT, VIP, 3, 1, p, b"\x45\x00garbage"),
    "icmp_error_quoting_not_ipv4": lambda p: icmp_error(CLIENT, VIP, 3, 1, p, b"\x60" + to_client[1:]),
    "icmp_error_quoting_unknown_flow": lambda p: icmp_error(
        CLIENT, VIP, 3, 1, p, raw(IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=p, flags="A"))[:28]),
    "jumbo_tcp_ack_no_connection": lambda p: tcp(p, flags="A", payload=b"j" * 8946),
    "jumbo_syn_dont_fragment": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, flags="DF") / TCP(sport=p, dport=80, flags="S")
                                          / Raw(b"j" * 8946)),
    "jumbo_total_length_beyond_frame": lambda p: raw(ether() / IP(src=CLIENT, dst=VIP, len=9100) / TCP(sport=p, dport=80, flags="A")
                                                  / Raw(b"j" * 8946)),

    "dip_eth_header_only_ipv4": lambda p: raw(ether()),
    "dip_ip_truncated": lambda p: tcp(p, src=RS, dst=CLIENT, sport=80, dport=HELD)[:E + 12],
    "dip_ip_ihl_below_5": lambda p: raw(ether() / IP(src=RS, dst=CLIENT, ihl=4) / TCP(sport=80, dport=HELD, flags="A")),
    "dip_ip_bad_checksum": lambda p: spoil(tcp(p, "A", src=RS, dst=CLIENT, sport=80, dport=HELD), E + 10),
    "dip_tcp_truncated": lambda p: raw(ether() / IP(src=RS, dst=CLIENT, proto=6) / Raw(raw(TCP(sport=80, dport=HELD))[:10])),
    "dip_udp_length_beyond_datagram": lambda p: raw(ether() / IP(src=RS, dst=CLIENT) / UDP(sport=7, dport=p, len=100) / Raw(b"pong")),
    "dip_ttl_1_on_connection": lambda p: tcp(p, "A", src=RS, dst=CLIENT, sport=80, dport=HELD, ttl=1, id=p),
    "dip_fragment_orphan": lambda p: raw(ether() / IP(src=RS, dst=CLIENT, proto=6, id=p, frag=8) / Raw(b"\x5a" * 16)),
    "dip_icmp_error_about_connection": lambda p: icmp_error(RS, CLIENT, 3, 1, p, to_rs),
    "dip_icmp_error_bad_checksum": lambda p: icmp_error(RS, CLIENT, 3, 1, p, to_rs, bad_sum=True),
    "dip_icmp_error_quoting_garbage": lambda p: icmp_error(RS, CLIENT, 3, 1, p, b"\x45"),
}

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((cfg["iface"], 0))
for i, kind in enumerate(cfg["kinds"]):
    base = cfg["base"] + 100 * i
    for n in range(N):
        s.send(KINDS[kind](base + n))
        time.sleep(0.002)
    print("sent", kind, base, N, flush=True)
    ack = os.path.join(cfg["ack_dir"], "ack-" + kind)
    while not os.path.exists(ack):
        time.sleep(0.01)
print("corpus done", flush=True)
