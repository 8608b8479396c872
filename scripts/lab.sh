#!/usr/bin/env bash
# The classic LVS lab in network namespaces, one command: NAT, direct routing or tunnelling.
#
#   scripts/lab.sh up [--method nat|dr|tun]   build the namespaces, start the real servers
#                            and masqd; dr: each real server holds the VIP on lo; tun: on
#                            its tunnel end (default nat)
#   scripts/lab.sh demo      walk through the seed: rr, wrr 3:1, list, save, flush, restore
#   scripts/lab.sh exercise rr|wrr|wlc|persistence|gateway|trace   one exercise of docs/lab.md
#   scripts/lab.sh status    what is up
#   scripts/lab.sh exec NS CMD...   run CMD in a namespace: client dir rs1 rs2 sw
#                            (routed lab: also lan router rclient; rogue lab: rogue),
#                            with the lab's binaries first on PATH and MASQ_SOCKET set
#                            to the lab masqd's socket (exec dir masqadm -L -n)
#   scripts/lab.sh down      stop everything and delete the namespaces; safe to repeat
#
#   P-client             P-dir: masqd --vip-iface P-ext --dip-iface P-int
#   P-cli ────────────── P-ext                P-int ───── P-sw: bridge P-br
#   192.168.0.101/24     VIP 192.168.0.10/24  DIP         port P-sd
#   gw 192.168.0.10      ip_forward=0         192.168.100.10/24
#                                                         port P-s1 ───── P-rs1: P-r1 192.168.100.7/24
#                                                         port P-s2 ───── P-rs2: P-r2 192.168.100.9/24
#                                                                         (gw 192.168.100.10)
#   Direct routing (up --method dr): each real server also holds the VIP 192.168.0.10/32
#   on lo, with arp_ignore=1 and arp_announce=2 so that it never answers or announces the
#   VIP on the switch; its default gateway stays the DIP, so its answers (from the VIP)
#   come back through the director. The demo and the exercises add real servers with -g.
#   Tunnelling (up --method tun): as direct routing, and each real server takes the
#   client's packets out of their IPIP header: with the kernel's tunl0 (the VIP on it)
#   where the host kernel has ipip, else with `masq-labsrv tunnel-end` (the VIP on lo);
#   rp_filter off. The demo and the exercises add real servers with -i.
#   Routed (MASQ_LAB_ROUTED=1): P-cli, P-ext and the router's P-rext (192.168.0.1/24) meet
#   on bridge P-lbr in P-lan (ports P-lc, P-ld, P-lr) instead of one cable; P-router's
#   P-rint 10.0.0.1/24 is cabled to P-rclient's P-rc 10.0.0.2/24 (gw 10.0.0.1), and masqd
#   gets --vip-gateway 192.168.0.1. (P = the prefix; every name is at most 13 characters.)
#   Rogue (MASQ_LAB_ROGUE=1): P-rogue, a host that does not belong on the real servers'
#   segment, cabled to the switch (P-rg 192.168.100.66/24 ───── port P-sg), to attack the
#   director from there (forged ARP, spoofed frames) as docs/security.md describes.
#
# Each real server runs `masq-labsrv http` on :80 (log: STATE/rs1.log, STATE/rs2.log)
# and `masq-labsrv udp-echo` on :7. masqd's control socket is STATE/masqd.sock, its log
# STATE/masqd.log; every daemon has a pid file in STATE.
#
# Environment:
#   MASQ_LAB_PREFIX   namespace/interface prefix, 1-8 of [A-Za-z0-9_] (default masq)
#   MASQ_LAB_STATE    state directory (default /tmp/masq-lab-PREFIX)
#   MASQ_BIN_DIR      where masqd, masqadm and masq-labsrv are (default: target/release
#                     of this repository, built with cargo if missing)
#   MASQ_LAB_ROUTED=1 add the router and a routed client
#   MASQ_LAB_ROGUE=1  add a rogue host on the real servers' segment
#   MASQ_LAB_OFFLOADS=off  turn tso/gso/gro/tx checksumming off on every lab interface
#   MASQ_LAB_WAIT     seconds to wait for the daemons to answer (default 20)
#   MASQ_LAB_MASQD_ARGS  more arguments for masqd, split on spaces (e.g. --web 127.0.0.1:8080)
#   MASQ_LAB_MASQD_USER  run masqd as this numeric uid (and gid) with only the capabilities
#                     packaging/masqd.service gives it, ambient (setpriv); STATE becomes
#                     that user's, for the socket and its lock
#
# Everything happens inside the namespaces this script creates: it never touches the
# host's interfaces, and no lab traffic leaves them.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
P=${MASQ_LAB_PREFIX:-masq}
STATE=${MASQ_LAB_STATE:-/tmp/masq-lab-$P}
SOCK=$STATE/masqd.sock
WAIT=${MASQ_LAB_WAIT:-20}
# Marks a directory as made by this script, so `down` never deletes anything else.
MARKER=.masq-lab

VIP=192.168.0.10
CLIENT_IP=192.168.0.101
DIP=192.168.100.10
RS1_IP=192.168.100.7
RS2_IP=192.168.100.9
ROUTER_LAN_IP=192.168.0.1
ROUTER_NET_IP=10.0.0.1
RCLIENT_IP=10.0.0.2
ROGUE_IP=192.168.100.66

# Short namespace names, as `exec` takes them.
ALL_NS=(client dir sw rs1 rs2 lan router rclient rogue)

die() {
    echo "lab.sh: $*" >&2
    exit 1
}

# A remark for the student; bold on a terminal.
note() {
    if [ -t 1 ]; then
        printf '\n\033[1m>> %s\033[0m\n' "$*"
    else
        printf '\n>> %s\n' "$*"
    fi
}

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

ns() { echo "$P-$1"; }

ns_exists() { [ -e "/run/netns/$(ns "$1")" ]; }

# Runs a command in a lab namespace.
in_ns() {
    local n=$1
    shift
    ip netns exec "$(ns "$n")" "$@"
}

check_host() {
    command -v ip >/dev/null 2>&1 || die "'ip' (iproute2) is not installed; install it (e.g. apt-get install iproute2)"
    [ "$(id -u)" -eq 0 ] || die "network namespaces need root: sudo $0 ${*:-}"
    [[ $P =~ ^[A-Za-z0-9_]{1,8}$ ]] || die "MASQ_LAB_PREFIX must be 1-8 of [A-Za-z0-9_] (interface names are at most 15 characters), not '$P'"
}

# Reads what `up` recorded (binary directory, routed or not).
load_state() {
    [ -f "$STATE/lab.env" ] || die "lab '$P' is not up (no $STATE/lab.env); run: scripts/lab.sh up"
    # shellcheck source=/dev/null
    . "$STATE/lab.env"
    # The forwarding method's ipvsadm option, for the demo and the exercises.
    case ${METHOD:-nat} in
        dr) FWD=-g ;;
        tun) FWD=-i ;;
        *) FWD=-m ;;
    esac
}

resolve_bins() {
    local missing=() b
    if [ -n "${MASQ_BIN_DIR:-}" ]; then
        BIN=$MASQ_BIN_DIR
    else
        BIN=$REPO/target/release
    fi
    for b in masqd masqadm masq-labsrv; do
        [ -x "$BIN/$b" ] || missing+=("$b")
    done
    [ ${#missing[@]} -eq 0 ] && return
    [ -z "${MASQ_BIN_DIR:-}" ] || die "MASQ_BIN_DIR=$BIN lacks ${missing[*]} (build them: cargo build --release --workspace --bins)"
    command -v cargo >/dev/null 2>&1 || die "$BIN lacks ${missing[*]} and cargo is not in PATH; build them first: cargo build --release --workspace --bins"
    echo "lab.sh: building ${missing[*]} (cargo build --release --workspace --bins)" >&2
    (cd "$REPO" && cargo build --release --workspace --bins) || die "cargo build failed"
    for b in masqd masqadm masq-labsrv; do
        [ -x "$BIN/$b" ] || die "$BIN/$b is still missing after the build"
    done
}

sysctl_in() {
    local n=$1
    shift
    in_ns "$n" sysctl -qw "$@" >/dev/null
}

# A namespace with loopback up and without IPv6, so captures show only the lab's IPv4.
make_ns() {
    local n=$1
    ip netns add "$(ns "$n")"
    in_ns "$n" ip link set lo up
    if [ -d /proc/sys/net/ipv6 ]; then
        sysctl_in "$n" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    fi
}

# A veth cable between two namespaces, created inside them (never in the host's).
cable() {
    local ns_a=$1 if_a=$2 ns_b=$3 if_b=$4
    ip -n "$(ns "$ns_a")" link add "$if_a" type veth peer name "$if_b" netns "$(ns "$ns_b")"
    ip -n "$(ns "$ns_a")" link set "$if_a" up
    ip -n "$(ns "$ns_b")" link set "$if_b" up
    LAB_IFACES+=("$ns_a:$if_a" "$ns_b:$if_b")
}

make_bridge() {
    local n=$1 br=$2 port
    shift 2
    ip -n "$(ns "$n")" link add "$br" type bridge
    for port in "$@"; do
        ip -n "$(ns "$n")" link set "$port" master "$br"
    done
    ip -n "$(ns "$n")" link set "$br" up
    LAB_IFACES+=("$n:$br")
}

addr() {
    local n=$1 ifc=$2 a=$3
    ip -n "$(ns "$n")" addr add "$a" dev "$ifc"
}

# Starts a daemon in a namespace, in the background with its output in a file, and
# records its pid in STATE/NAME.pid (`ip netns exec` execs the command, so $! is the
# daemon itself).
start_daemon() {
    local name=$1 n=$2 out=$3
    shift 3
    ip netns exec "$(ns "$n")" "$@" </dev/null >>"$out" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

# Whether a process runs (a zombie does not: nobody may have reaped it yet).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# Whether a pid is alive and inside one of this lab's namespaces (pids get reused).
pid_in_lab() {
    local pid=$1 names
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    names=$(ip netns identify "$pid" 2>/dev/null) || return 1
    local n
    for n in "${ALL_NS[@]}"; do
        grep -qx -- "$(ns "$n")" <<<"$names" && return 0
    done
    return 1
}

# Waits (bounded) for a daemon to pass a check; fails with its log if it dies or times out.
wait_for() {
    local what=$1 pidfile=$2 log=$3
    shift 3
    local deadline=$((SECONDS + WAIT))
    until "$@" >/dev/null 2>&1; do
        if ! alive "$(cat "$pidfile")"; then
            echo "lab.sh: $what exited; the end of $log:" >&2
            tail -n 20 "$log" >&2 || true
            die "$what did not start"
        fi
        if [ $SECONDS -ge "$deadline" ]; then
            echo "lab.sh: the end of $log:" >&2
            tail -n 20 "$log" >&2 || true
            die "$what did not answer within ${WAIT}s"
        fi
        sleep 0.1
    done
}

listening() {
    local n=$1 proto=$2 port=$3
    in_ns "$n" ss -Hln"$proto" "sport = :$port" | grep -q .
}

masqadm_in_dir() { in_ns dir "$BIN/masqadm" --socket "$SOCK" "$@"; }

# The EXIT trap while `up` builds: tears down what was built if `up` fails.
up_exited() {
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "lab.sh: up failed; tearing the lab down" >&2
        cmd_down >&2 || true
    fi
}

cmd_up() {
    check_host up
    local method=nat
    while [ $# -gt 0 ]; do
        case $1 in
            --method)
                [ $# -ge 2 ] || die "up: --method needs nat, dr or tun"
                method=$2
                shift 2
                ;;
            --method=*)
                method=${1#--method=}
                shift
                ;;
            *) die "up: unknown option '$1' (scripts/lab.sh up [--method nat|dr|tun])" ;;
        esac
    done
    case $method in nat | dr | tun) ;; *) die "up: --method must be nat, dr or tun, not '$method'" ;; esac
    local n existing=()
    for n in "${ALL_NS[@]}"; do
        ns_exists "$n" && existing+=("$(ns "$n")")
    done
    [ ${#existing[@]} -eq 0 ] || die "lab '$P' is already (partly) up: ${existing[*]}; run: scripts/lab.sh down"
    resolve_bins
    local routed=${MASQ_LAB_ROUTED:-0}
    local rogue=${MASQ_LAB_ROGUE:-0}
    local offloads=${MASQ_LAB_OFFLOADS:-on}
    case $offloads in on | off) ;; *) die "MASQ_LAB_OFFLOADS must be on or off, not '$offloads'" ;; esac
    if [ "$offloads" = off ]; then
        command -v ethtool >/dev/null 2>&1 || die "MASQ_LAB_OFFLOADS=off needs ethtool; install it"
    fi
    command -v nft >/dev/null 2>&1 || echo "lab.sh: warning: nft is not installed; the director's kernel will answer VIP traffic itself (install nftables)" >&2

    # From here on, a failure tears down whatever was built.
    trap up_exited EXIT
    trap 'exit 130' INT TERM

    if [ -d "$STATE" ]; then
        [ -f "$STATE/$MARKER" ] || [ -z "$(ls -A "$STATE")" ] || die "$STATE exists and was not made by lab.sh; choose another MASQ_LAB_STATE"
        rm -rf "$STATE"
    fi
    mkdir -p "$STATE"
    touch "$STATE/$MARKER"
    printf 'BIN=%q\nROUTED=%q\nOFFLOADS=%q\nMETHOD=%q\n' "$BIN" "$routed" "$offloads" "$method" >"$STATE/lab.env"

    LAB_IFACES=()
    local lab_ns=(client dir sw rs1 rs2)
    [ "$routed" = 1 ] && lab_ns+=(lan router rclient)
    [ "$rogue" = 1 ] && lab_ns+=(rogue)
    for n in "${lab_ns[@]}"; do
        make_ns "$n"
    done

    # The client side: straight to the director, or through a switch the router shares.
    if [ "$routed" = 1 ]; then
        cable client "$P-cli" lan "$P-lc"
        cable dir "$P-ext" lan "$P-ld"
        cable router "$P-rext" lan "$P-lr"
        make_bridge lan "$P-lbr" "$P-lc" "$P-ld" "$P-lr"
        cable router "$P-rint" rclient "$P-rc"
        addr router "$P-rext" "$ROUTER_LAN_IP/24"
        addr router "$P-rint" "$ROUTER_NET_IP/24"
        sysctl_in router net.ipv4.ip_forward=1
        addr rclient "$P-rc" "$RCLIENT_IP/24"
        ip -n "$(ns rclient)" route add default via "$ROUTER_NET_IP"
        sysctl_in rclient net.ipv4.tcp_tw_reuse=1
    else
        cable client "$P-cli" dir "$P-ext"
    fi
    addr client "$P-cli" "$CLIENT_IP/24"
    ip -n "$(ns client)" route add default via "$VIP"
    sysctl_in client net.ipv4.tcp_tw_reuse=1

    # The director: the VIP belongs to its kernel as in the classic lab (masqd keeps the
    # kernel from answering service traffic), the DIP is the real servers' gateway, and
    # the kernel forwards nothing itself.
    addr dir "$P-ext" "$VIP/24"
    sysctl_in dir net.ipv4.ip_forward=0

    # The real servers' switch.
    cable dir "$P-int" sw "$P-sd"
    cable rs1 "$P-r1" sw "$P-s1"
    cable rs2 "$P-r2" sw "$P-s2"
    make_bridge sw "$P-br" "$P-sd" "$P-s1" "$P-s2"
    if [ "$rogue" = 1 ]; then
        cable rogue "$P-rg" sw "$P-sg"
        ip -n "$(ns sw)" link set "$P-sg" master "$P-br"
        addr rogue "$P-rg" "$ROGUE_IP/24"
    fi
    addr dir "$P-int" "$DIP/24"
    addr rs1 "$P-r1" "$RS1_IP/24"
    addr rs2 "$P-r2" "$RS2_IP/24"
    ip -n "$(ns rs1)" route add default via "$DIP"
    ip -n "$(ns rs2)" route add default via "$DIP"
    case $method in
        dr)
            for n in rs1 rs2; do
                hold_vip "$n" lo
            done
            ;;
        tun)
            TUNNEL_END=$(tunnel_end_kind)
            echo "TUNNEL_END=$TUNNEL_END" >>"$STATE/lab.env"
            for n in rs1 rs2; do
                hold_tunnel_vip "$n"
            done
            ;;
    esac

    if [ "$offloads" = off ]; then
        local entry
        for entry in "${LAB_IFACES[@]}"; do
            in_ns "${entry%%:*}" ethtool -K "${entry#*:}" tso off gso off gro off tx off >/dev/null 2>&1 ||
                die "ethtool -K ${entry#*:} (in $(ns "${entry%%:*}")) failed"
        done
    fi

    # A UDP server answers from the address its socket is bound to, or else from the one
    # routing picks (the real server's own): under direct routing the client expects its
    # answer from the VIP, so the echo binds the VIP.
    local i name udp_listen=0.0.0.0
    [ "$method" != nat ] && udp_listen=$VIP
    for i in 1 2; do
        name=RS$i
        start_daemon "rs$i-http" "rs$i" "$STATE/rs$i-http.out" "$BIN/masq-labsrv" http --name "$name" --listen 0.0.0.0:80 --log "$STATE/rs$i.log"
        start_daemon "rs$i-udp" "rs$i" "$STATE/rs$i-udp.out" "$BIN/masq-labsrv" udp-echo --name "$name" --listen "$udp_listen:7"
        if [ "${TUNNEL_END:-}" = labsrv ]; then
            start_daemon "rs$i-tun" "rs$i" "$STATE/rs$i-tun.out" "$BIN/masq-labsrv" tunnel-end --vip "$VIP"
        fi
    done

    local gateway=()
    [ "$routed" = 1 ] && gateway=(--vip-gateway "$ROUTER_LAN_IP")
    local masqd_extra=()
    [ -n "${MASQ_LAB_MASQD_ARGS:-}" ] && read -ra masqd_extra <<<"$MASQ_LAB_MASQD_ARGS"
    local as_user=()
    if [ -n "${MASQ_LAB_MASQD_USER:-}" ]; then
        [[ $MASQ_LAB_MASQD_USER =~ ^[0-9]+$ ]] || die "MASQ_LAB_MASQD_USER must be a numeric uid, not '$MASQ_LAB_MASQD_USER'"
        command -v setpriv >/dev/null 2>&1 || die "MASQ_LAB_MASQD_USER needs setpriv (util-linux)"
        # As the unit runs it: its own user and group, no other group, CAP_NET_RAW,
        # CAP_NET_ADMIN and CAP_BPF as ambient capabilities and nothing more to gain.
        # (Not its LimitMEMLOCK=infinity, which raising needs CAP_SYS_RESOURCE for.)
        local caps=+net_raw,+net_admin,+bpf
        as_user=(setpriv --reuid="$MASQ_LAB_MASQD_USER" --regid="$MASQ_LAB_MASQD_USER" --clear-groups
            --inh-caps="$caps" --ambient-caps="$caps" --bounding-set=-all,"$caps" --no-new-privs)
        chown "$MASQ_LAB_MASQD_USER:$MASQ_LAB_MASQD_USER" "$STATE"
    fi
    start_daemon masqd dir "$STATE/masqd.log" "${as_user[@]}" "$BIN/masqd" --vip-iface "$P-ext" --dip-iface "$P-int" "${gateway[@]}" --socket "$SOCK" "${masqd_extra[@]}"

    for i in 1 2; do
        wait_for "RS$i's HTTP server" "$STATE/rs$i-http.pid" "$STATE/rs$i-http.out" listening "rs$i" t 80
        wait_for "RS$i's UDP echo" "$STATE/rs$i-udp.pid" "$STATE/rs$i-udp.out" listening "rs$i" u 7
        if [ "${TUNNEL_END:-}" = labsrv ]; then
            wait_for "RS$i's tunnel end" "$STATE/rs$i-tun.pid" "$STATE/rs$i-tun.out" grep -q decapsulating "$STATE/rs$i-tun.out"
        fi
    done
    wait_for masqd "$STATE/masqd.pid" "$STATE/masqd.log" masqadm_in_dir -L -n

    trap - EXIT INT TERM
    echo "lab '$P' is up ($method): client $CLIENT_IP -> VIP $VIP (masqd in $(ns dir): $P-ext / $P-int) -> RS1 $RS1_IP, RS2 $RS2_IP"
    [ "$method" = dr ] && echo "direct routing: the real servers hold $VIP on lo (arp_ignore=1, arp_announce=2); add them with -g"
    if [ "$method" = tun ]; then
        if [ "$TUNNEL_END" = kernel ]; then
            echo "tunnelling: the real servers hold $VIP on tunl0 (the kernel's ipip); add them with -i"
        else
            echo "tunnelling: this kernel has no ipip; masq-labsrv tunnel-end decapsulates on each real server, which holds $VIP on lo; add them with -i"
        fi
    fi
    [ "$routed" = 1 ] && echo "routed client $RCLIENT_IP in $(ns rclient) via router $ROUTER_LAN_IP"
    [ "$rogue" = 1 ] && echo "rogue host $ROGUE_IP in $(ns rogue) on the real servers' switch"
    echo "state: $STATE (masqd.log, rs1.log, rs2.log); try: scripts/lab.sh demo"
}

# Direct routing's real server: the VIP on lo, so that packets to it are its own, and
# never in ARP — arp_ignore=1 answers only for addresses of the interface asked on,
# arp_announce=2 takes the sender address of its own requests from that interface.
hold_vip() {
    local n=$1 dev=$2
    addr "$n" "$dev" "$VIP/32"
    sysctl_in "$n" net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
}

# Who takes the client's packets out of their IPIP header on a real server: the kernel's
# tunl0 if the host kernel can make an ipip device (tried in the director's namespace),
# else masq-labsrv tunnel-end.
tunnel_end_kind() {
    if ip -n "$(ns dir)" link add "$P-tprobe" type ipip remote 127.0.0.2 local 127.0.0.1 >/dev/null 2>&1; then
        ip -n "$(ns dir)" link del "$P-tprobe"
        echo kernel
    else
        echo labsrv
    fi
}

# Tunnelling's real server: the VIP as direct routing's, on tunl0 or (for the userspace
# tunnel end) on lo. rp_filter off: the decapsulated packet comes from the client on an
# interface the route back to the client does not use (the kernel takes the stricter of
# all and the interface's value, so both are set).
hold_tunnel_vip() {
    local n=$1 dev=lo
    if [ "$TUNNEL_END" = kernel ]; then
        dev=tunl0
        # The ipip module makes tunl0 in every namespace, unless
        # net.core.fb_tunnels_only_for_init_net keeps it to the host's own.
        ip -n "$(ns "$n")" link show tunl0 >/dev/null 2>&1 || ip -n "$(ns "$n")" link add tunl0 type ipip
        ip -n "$(ns "$n")" link set tunl0 up
        sysctl_in "$n" net.ipv4.conf.tunl0.rp_filter=0
    fi
    hold_vip "$n" "$dev"
    sysctl_in "$n" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.lo.rp_filter=0
}

# Sends SIGTERM to each pid, waits up to $1 seconds, then SIGKILLs what is left.
stop_pids() {
    local grace=$1 pid
    shift
    [ $# -gt 0 ] || return 0
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    local deadline=$((SECONDS + grace)) left
    while :; do
        left=()
        for pid in "$@"; do
            alive "$pid" && left+=("$pid")
        done
        [ ${#left[@]} -eq 0 ] && return 0
        [ $SECONDS -ge "$deadline" ] && break
        sleep 0.1
    done
    for pid in "${left[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
}

cmd_down() {
    check_host down
    local pidfile pid pids=() n
    # The daemons first, by their recorded pids (masqd cleans up on SIGTERM).
    for pidfile in "$STATE"/*.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile" 2>/dev/null || true)
        pid_in_lab "$pid" && pids+=("$pid")
    done
    stop_pids 5 "${pids[@]}"
    # Then anything else still running in the lab's namespaces (captures, iperf3, ...).
    pids=()
    for n in "${ALL_NS[@]}"; do
        ns_exists "$n" || continue
        for pid in $(ip netns pids "$(ns "$n")" 2>/dev/null || true); do
            # Never this script itself, should it have been run inside the lab.
            [ "$pid" = $$ ] || [ "$pid" = "$PPID" ] || pids+=("$pid")
        done
    done
    stop_pids 3 "${pids[@]}"
    for n in "${ALL_NS[@]}"; do
        if ns_exists "$n"; then
            ip netns del "$(ns "$n")" 2>/dev/null || echo "lab.sh: could not delete $(ns "$n")" >&2
        fi
    done
    if [ -d "$STATE" ]; then
        if [ -f "$STATE/$MARKER" ]; then
            rm -rf "$STATE"
        else
            echo "lab.sh: leaving $STATE alone: it was not made by lab.sh" >&2
        fi
    fi
    echo "lab '$P' is down"
}

cmd_status() {
    check_host status
    local n pidfile pid any=0
    echo "lab '$P', state $STATE"
    for n in "${ALL_NS[@]}"; do
        if ns_exists "$n"; then
            any=1
            printf '  %-16s %s\n' "$(ns "$n")" "$(ip -n "$(ns "$n")" -br link show | awk '$1 != "lo" { print $1, $2 }' | paste -sd ';' -)"
            ip -n "$(ns "$n")" -br -4 addr show | awk '$1 != "lo" && $3 != "" { printf "  %-16s   %s %s\n", "", $1, $3 }'
        fi
    done
    [ $any = 1 ] || {
        echo "  no namespaces: the lab is down"
        return 0
    }
    for pidfile in "$STATE"/*.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if pid_in_lab "$pid"; then
            printf '  %-10s pid %-8s running\n' "$(basename "$pidfile" .pid)" "$pid"
        else
            printf '  %-10s pid %-8s NOT running\n' "$(basename "$pidfile" .pid)" "$pid"
        fi
    done
    if [ -f "$STATE/lab.env" ]; then
        load_state
        masqadm_in_dir -L -n || true
    fi
}

cmd_exec() {
    check_host exec
    [ $# -ge 2 ] || die "usage: scripts/lab.sh exec client|dir|rs1|rs2|sw|lan|router|rclient CMD..."
    local n=$1
    shift
    case " ${ALL_NS[*]} " in
        *" $n "*) ;;
        *) die "no namespace '$n'; choose one of: ${ALL_NS[*]}" ;;
    esac
    ns_exists "$n" || die "$(ns "$n") does not exist (is the lab up? routed namespaces need MASQ_LAB_ROUTED=1)"
    # The binaries `up` ran, so that `exec dir masqadm -L -n` talks to the lab's masqd.
    [ -f "$STATE/lab.env" ] && load_state
    PATH=${BIN:+$BIN:}$PATH MASQ_SOCKET=$SOCK exec ip netns exec "$(ns "$n")" "$@"
}

# Prints a command as the student would type it (with where it runs), then runs it.
step() {
    local where=$1
    shift
    printf '[%s]# %s\n' "$where" "$*"
}

demo_masqadm() {
    step director "masqadm $*"
    masqadm_in_dir "$@" || die "demo: 'masqadm $*' failed"
}

demo_curl() {
    local client=${1:-client}
    step "$client" "curl -s http://$VIP/"
    in_ns "$client" curl -sS --max-time 5 "http://$VIP/" || die "demo: curl from $client failed (see $STATE/masqd.log)"
}

cmd_demo() {
    check_host demo
    load_state
    masqadm_in_dir -L -n >/dev/null 2>&1 || die "masqd does not answer on $SOCK (see $STATE/masqd.log; restart with scripts/lab.sh down && scripts/lab.sh up)"
    local i
    note "Start from an empty table."
    demo_masqadm -C

    if [ "$FWD" = -g ]; then
        note "A virtual service on the VIP, round robin, with two real servers by direct routing (-g)."
    elif [ "$FWD" = -i ]; then
        note "A virtual service on the VIP, round robin, with two real servers through IPIP tunnels (-i)."
    else
        note "A virtual service on the VIP, round robin, with two real servers behind NAT (-m)."
    fi
    demo_masqadm -A -t "$VIP:80" -s rr
    demo_masqadm -a -t "$VIP:80" -r "$RS1_IP" "$FWD"
    demo_masqadm -a -t "$VIP:80" -r "$RS2_IP" "$FWD"

    note "Six new connections. Look: the answers alternate, and the most recently added real server (RS2) answers first: RS2 RS1 RS2 RS1 RS2 RS1."
    for i in 1 2 3 4 5 6; do demo_curl; done

    note "Weighted round robin, RS1 with weight 3."
    demo_masqadm -E -t "$VIP:80" -s wrr
    demo_masqadm -e -t "$VIP:80" -r "$RS1_IP" "$FWD" -w 3

    note "Eight new connections. Look: 3:1, RS2 first again: RS2 RS1 RS1 RS1 RS2 RS1 RS1 RS1."
    for i in 1 2 3 4 5 6 7 8; do demo_curl; done

    local forward=Masq
    [ "$FWD" = -g ] && forward=Route
    [ "$FWD" = -i ] && forward=Tunnel
    note "The table. Look: Forward is $forward, the weights are 3 and 1; the closed connections wait in TIME_WAIT and count as InActConn (RS1 9, RS2 5)."
    demo_masqadm -L -n

    note "Save the rules (to $STATE/rules), flush the table, restore them."
    step director "masqadm -S -n > rules"
    masqadm_in_dir -S -n >"$STATE/rules" || die "demo: 'masqadm -S -n' failed"
    step director "cat rules"
    cat "$STATE/rules"
    demo_masqadm -C
    note "Look: no services left."
    demo_masqadm -L -n
    step director "masqadm -R < rules"
    masqadm_in_dir -R <"$STATE/rules" || die "demo: 'masqadm -R' failed"
    note "Look: the same service and weights as before the flush."
    demo_masqadm -L -n

    if [ "$FWD" = -g ]; then
        note "What the real servers saw. Look: client=$CLIENT_IP, the client's own address, and local=$VIP: direct routing changed only the MAC, so the packet still went to the VIP, which each real server holds on lo."
    elif [ "$FWD" = -i ]; then
        note "What the real servers saw. Look: client=$CLIENT_IP, the client's own address, and local=$VIP: the director sent the client's packet unchanged inside an IPIP header, and the real server's tunnel end took it out."
    else
        note "What the real servers saw. Look: client=$CLIENT_IP, the client's own address (LVS-NAT rewrites only the destination), and local= the real server's address."
    fi
    step rs1 "tail -n 4 rs1.log"
    tail -n 4 "$STATE/rs1.log"
    step rs2 "tail -n 4 rs2.log"
    tail -n 4 "$STATE/rs2.log"

    if ns_exists rclient; then
        note "The routed client ($RCLIENT_IP) reaches the VIP through the router; masqd sends the replies to its --vip-gateway."
        demo_curl rclient
    fi
    note "Now try your own: scripts/lab.sh exec client curl -s http://$VIP/ ; masqd's log: $STATE/masqd.log"
}

# The exercises of docs/lab.md. Each starts from an empty table and leaves its rules in
# place for the student to explore.
exercise_rr() {
    note "Round robin: new connections take turns, the most recently added server first."
    demo_masqadm -A -t "$VIP:80" -s rr
    demo_masqadm -a -t "$VIP:80" -r "$RS1_IP" "$FWD"
    demo_masqadm -a -t "$VIP:80" -r "$RS2_IP" "$FWD"
    local i
    for i in 1 2 3 4; do demo_curl; done
    demo_masqadm -L -n
}

exercise_wrr() {
    note "Weighted round robin 3:1: RS1 gets three new connections for each of RS2's."
    demo_masqadm -A -t "$VIP:80" -s wrr
    demo_masqadm -a -t "$VIP:80" -r "$RS1_IP" "$FWD" -w 3
    demo_masqadm -a -t "$VIP:80" -r "$RS2_IP" "$FWD" -w 1
    local i
    for i in 1 2 3 4 5 6 7 8; do demo_curl; done
    note "Look at the weights, and InActConn: it grew by 6 and 2 (connections of earlier exercises still wait in TIME_WAIT and count too: a re-added server keeps its old counters, as in the kernel)."
    demo_masqadm -L -n
}

exercise_wlc() {
    note "Weighted least connection: a server busy with long downloads (ActiveConn) gets fewer new connections."
    demo_masqadm -A -t "$VIP:80" -s wlc
    demo_masqadm -a -t "$VIP:80" -r "$RS1_IP" "$FWD"
    demo_masqadm -a -t "$VIP:80" -r "$RS2_IP" "$FWD"
    note "Three slow downloads (100 kB/s for about 5 s each) open in the background."
    local i pids=()
    for i in 1 2 3; do
        step client "curl -s --limit-rate 100k -o /dev/null http://$VIP/bytes/500000 &"
        in_ns client curl -s --max-time 15 --limit-rate 100k -o /dev/null "http://$VIP/bytes/500000" &
        pids+=($!)
        sleep 0.3
    done
    note "Look: ActiveConn is 2 on one server and 1 on the other."
    demo_masqadm -L -n
    note "Quick requests now go to the server with fewer active connections."
    for i in 1 2; do demo_curl; done
    wait "${pids[@]}" || true
    demo_masqadm -L -n
}

exercise_persistence() {
    note "Persistence (-p 60): a client keeps its real server for 60 s, whatever the scheduler says."
    demo_masqadm -A -t "$VIP:80" -s rr -p 60
    demo_masqadm -a -t "$VIP:80" -r "$RS1_IP" "$FWD"
    demo_masqadm -a -t "$VIP:80" -r "$RS2_IP" "$FWD"
    local i
    for i in 1 2 3 4; do demo_curl; done
    note "Look: the persistence template (client address, port 0, state NONE) next to the connections."
    demo_masqadm -L -n -c
    demo_masqadm -L -n --persistent-conn
}

exercise_gateway() {
    note "Break it: RS1 loses its default route, so its replies never come back through the DIP."
    demo_masqadm -A -t "$VIP:80" -s rr
    demo_masqadm -a -t "$VIP:80" -r "$RS1_IP" "$FWD"
    step rs1 "ip route del default"
    in_ns rs1 ip route del default
    local i
    for i in 1 2 3; do
        step client "curl -s --max-time 2 http://$VIP/"
        in_ns client curl -sS --max-time 2 "http://$VIP/" || true
    done
    note "Ask masq what is wrong."
    step director "masqadm --check"
    masqadm_in_dir --check || true
    note "Repair it and try again."
    step rs1 "ip route add default via $DIP"
    in_ns rs1 ip route add default via "$DIP"
    demo_curl
}

exercise_trace() {
    note "Watch one connection's four rewrite stages."
    demo_masqadm -A -t "$VIP:80" -s rr
    demo_masqadm -a -t "$VIP:80" -r "$RS1_IP" "$FWD"
    sleep 1
    step director "masqadm --trace --count 1 &"
    masqadm_in_dir --trace --count 1 &
    local tracer=$!
    sleep 0.5
    demo_curl
    wait "$tracer" || true
}

cmd_exercise() {
    check_host exercise
    load_state
    local name=${1:-}
    case $name in
        rr | wrr | wlc | persistence | gateway | trace) ;;
        *) die "usage: scripts/lab.sh exercise rr|wrr|wlc|persistence|gateway|trace (see docs/lab.md)" ;;
    esac
    masqadm_in_dir -L -n >/dev/null 2>&1 || die "masqd does not answer on $SOCK (is the lab up?)"
    demo_masqadm -C
    "exercise_$name"
}

main() {
    [ $# -ge 1 ] || usage
    local cmd=$1
    shift
    case $cmd in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        demo) cmd_demo ;;
        exercise) cmd_exercise "$@" ;;
        status) cmd_status ;;
        exec) cmd_exec "$@" ;;
        -h | --help | help) usage ;;
        *)
            echo "lab.sh: unknown command '$cmd'" >&2
            usage
            ;;
    esac
}

main "$@"
