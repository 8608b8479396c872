complete -c masqd -l vip-iface -d 'Interface facing the clients, where the VIPs are served' -r
complete -c masqd -l dip-iface -d 'Interface facing the real servers; its address (the DIP) is their default gateway' -r
complete -c masqd -l simulate -d 'Direct the simulated lab LAB instead of interfaces: `seed` is docs/lab.md\'s (a client, RS1 and RS2 with web servers that name themselves). Needs no root; `masqadm --sim-request` makes the lab\'s client open connections' -r
complete -c masqd -l vip-gateway -d 'Next hop for clients that are not on the VIP interface\'s networks' -r
complete -c masqd -l max-conns -d 'Most entries tracked at once, connections and persistence templates together; a full table sheds templates that control no connection and half-open connections (SYN flood defence) before it refuses new ones' -r
complete -c masqd -l max-neighbours -d 'Most entries each side\'s neighbour (ARP) table holds; a full table sheds hosts that only asked for a VIP and addresses that never answered before it refuses one' -r
complete -c masqd -l rules -d 'Rules to load at start, in `ipvsadm -S` format (as `masqadm -R < FILE`); SIGHUP re-reads them and applies only the difference' -r -F
complete -c masqd -l socket -d 'Control socket path' -r -F
complete -c masqd -l kernel-guard -d 'How to stop the host\'s kernel from answering service traffic itself' -r -f -a "auto\t'Use nftables when `nft` is installed; warn otherwise'
nft\t'Require nftables'
off\t'Leave the kernel alone (the VIP must then not be a kernel address)'"
complete -c masqd -l health-check -d 'Probe every real server and take failed ones out of service: tcp, http, http:/PATH or http:/PATH:STATUS (default status 200)' -r
complete -c masqd -l health-interval -d 'Seconds between two probes of a real server' -r
complete -c masqd -l health-timeout -d 'Seconds a probe may take' -r
complete -c masqd -l health-rise -d 'Successful probes in a row that bring a failed real server back' -r
complete -c masqd -l health-fall -d 'Failed probes in a row that take a real server out of service' -r
complete -c masqd -l health-action -d 'What a failed real server gets: quiesced (weight 0) or removed' -r -f -a "quiesce\t'Weight 0 until it recovers (existing connections continue)'
remove\t'Deleted from its service until it recovers'"
complete -c masqd -l metrics -d 'Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9101)' -r
complete -c masqd -l web -d 'Serve the live lab page at http://ADDR/ (e.g. 127.0.0.1:8080; loopback unless told otherwise)' -r
complete -c masqd -l http-allow-host -d 'Another name (or address) the --web and --metrics endpoints answer to, with the endpoint\'s port unless one is given; repeatable. They answer only to localhost, 127.0.0.1, [::1] and the address they were reached on (a DNS-rebinding page names something else): add the names you browse them by, and NAME:PORT for a tunnel that arrives on another port (ssh -L 9000:127.0.0.1:8080: localhost:9000)' -r
complete -c masqd -l io -d 'Packet I/O: `ring` (TPACKET_V2/V3 rings, --workers threads per interface in a PACKET_FANOUT group), `socket` (recvmmsg, one thread per interface), `xdp` (AF_XDP sockets fed by an XDP program that takes only service traffic from the kernel; MTU-sized frames, senders\' checksum offload off) or `pnet` (pnet_datalink, a syscall per frame, MTU-sized frames only: for comparison)' -r -f -a "socket\t'One `AF_PACKET` socket per interface, `recvmmsg`/`sendmmsg`, one packet thread each'
ring\t'TPACKET_V2 (or V3) receive rings in a `PACKET_FANOUT` group, `--workers` threads per interface, `sendmmsg`'
pnet\t'A `pnet_datalink` channel per interface, a syscall per frame, one packet thread each; MTU-sized frames only. For comparison'
xdp\t'AF_XDP sockets fed by an XDP program that steals only service traffic, one packet thread per interface; MTU-sized frames with complete checksums only'"
complete -c masqd -l workers -d 'Packet threads per interface with --io ring (default: the number of CPUs)' -r
complete -c masqd -l ring-format -d 'Ring layout with --io ring: `v2` (one frame per slot, handed over at once: lowest latency) or `v3` (frames packed in blocks handed over when full or after 1 ms: densest, but a lone frame waits for the block)' -r -f -a "v2\t'TPACKET_V2: one frame per slot, each handed over as soon as it is written'
v3\t'TPACKET_V3: frames packed into blocks, handed over when full or after 1 ms'"
complete -c masqd -l busy-poll-us -d 'With --io ring: microseconds a packet thread keeps checking its empty ring before it sleeps (0: sleep at once). Trades CPU for fewer wake-ups under request/response load; leave 0 when the director shares its CPUs' -r
complete -c masqd -l log -d 'Log filter (tracing syntax), e.g. info, debug, masqd=debug' -r
complete -c masqd -l save-on-exit -d 'On a clean stop, write the rules back to --rules atomically'
complete -c masqd -l web-admin -d 'Allow changing schedulers and weights from the page. Each change needs the token masqd writes, at each start, to SOCKET.web-token (mode 0600); the page asks for it'
complete -c masqd -l qdisc-bypass -d 'Send straight to the interfaces\' drivers, skipping their queueing disciplines (PACKET_QDISC_BYPASS): cheaper per frame, but tc shaping on the director\'s interfaces no longer applies to forwarded frames'
complete -c masqd -s h -l help -d 'Print help (see more with \'--help\')'
complete -c masqd -s V -l version -d 'Print version'
