#!/usr/bin/env bash
# The datapath benchmark: masq side by side with the kernel and HAProxy, in the classic lab.
#
#   sudo scripts/bench.sh [--rounds N] [--duration S] [--out DIR] [--quick]
#                         [--contenders LIST] [--offloads on|off] [--profile]
#                         [--no-build] [--no-install]
#
#   --rounds N        rounds; each measures every contender once, the order rotated and
#                     reversed every other round (default 3)
#   --duration S      seconds of each load (default 10)
#   --out DIR         where the results go (default bench-out in the repository)
#   --quick           a smoke run: --rounds 1 --duration 3 (options after it still count)
#   --contenders L    comma-separated subset, e.g. nftables,masq (default: all available)
#   --offloads on|off TSO/GSO/GRO/tx checksumming on the lab's veths (default off, as in the
#                     reference table of shared/reference/afpacket-findings.md)
#   --profile         perf record the masq contenders' keep-alive, iperf3 and UDP runs of round 1
#                     (DIR/profile/*.txt)
#   --no-build        use MASQ_BIN_DIR (default target/release) as it is
#   --no-install      do not apt-get install missing tools
#
# The contenders (one up and one down function each, below):
#   direct     no NAT: the director's kernel routes (ip_forward=1) and the client talks to the
#              real servers' own addresses: the ceiling of the lab
#   nftables   kernel DNAT, `numgen inc mod 2` over RS1/RS2: the kernel baseline
#   haproxy    HAProxy `mode tcp`, roundrobin, on VIP:80 (no UDP: n/a)
#   masq       masqd with its default I/O back end
#   masq-IO    masqd --io IO (masq-pnet, masq-ring, masq-xdp): measured when this masqd has that back
#              end, reported as not implemented otherwise
#   masq-IO:ARG[:ARG…]  the same with more masqd arguments, e.g. masq-ring:--workers=1 or
#              masq-ring:--ring-format=v3 (each ARG one word; the whole name labels the
#              column)
#
# Each contender, each round: set up, check one request through it, warm up 2 s, then
#   new connections/s  wrk -t2 -c32 -d S --latency -H 'Connection: close'
#   keep-alive req/s   wrk -t2 -c32 -d S --latency (p50/p99 latency, director CPU)
#   TCP throughput     iperf3 -t S, one stream, client -> RS1 (VIP:5201 -> RS1 only)
#   UDP 64 B pps       trafgen on one CPU, one flow of 64-byte frames client -> VIP:7 -> RS1
#                      for S seconds, counted (and dropped) by an nft counter on RS1's
#                      interface, so nothing comes back; director CPU per packet
# and tear down. Every tool runs under `timeout`; all traffic stays in the lab's namespaces.
#
# Output in DIR: results.json (every sample, the medians, the targets), summary.md (medians
# with min-max across rounds and ratios to nftables, every round), chart.svg (ratios to
# nftables per metric); the table is printed at the end. See docs/benchmarks.md.
#
# Environment: MASQ_LAB_PREFIX (default mbench, a lab of its own: another lab is never
# touched), MASQ_LAB_STATE, MASQ_BIN_DIR (with --no-build), CARGO_TARGET_DIR (the build's),
# MASQ_LAB_MASQD_ARGS (more masqd arguments, as for lab.sh). The lab is always taken down
# at the end, on failure and on Ctrl-C too.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB=$REPO/scripts/lab.sh

ROUNDS=3
DUR=10
OUT=$REPO/bench-out
OFFLOADS=off
PROFILE=0
BUILD=1
INSTALL=1
CONTENDERS_ARG=

# Every contender this script knows, in the order of the tables.
CONTENDERS_ALL=(direct nftables haproxy masq masq-pnet masq-ring masq-xdp)

VIP=192.168.0.10
CLIENT_IP=192.168.0.101
RS1_IP=192.168.100.7
RS2_IP=192.168.100.9
# Ports: HTTP on the real servers, iperf3 on RS1, UDP (the echo port; dropped at RS1's
# interface before the echo server sees it) and the generator's fixed source port.
HTTP_PORT=80
IPERF_PORT=5201
UDP_PORT=7
UDP_SRC_PORT=40000
WARMUP=2

die() {
    echo "bench.sh: $*" >&2
    exit 1
}

warn() { echo "bench.sh: warning: $*" >&2; }

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

usage() {
    sed -n '2,50p' "${BASH_SOURCE[0]}" | sed -n '/^#/!q;p' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --rounds)
                [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a positive number"
                ROUNDS=$2
                shift
                ;;
            --duration)
                [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--duration takes a positive number of seconds"
                DUR=$2
                shift
                ;;
            --out)
                [ -n "${2:-}" ] || die "--out takes a directory"
                OUT=$2
                shift
                ;;
            --quick)
                ROUNDS=1
                DUR=3
                ;;
            --contenders)
                [ -n "${2:-}" ] || die "--contenders takes a list, e.g. nftables,masq"
                CONTENDERS_ARG=$2
                shift
                ;;
            --offloads)
                case ${2:-} in on | off) OFFLOADS=$2 ;; *) die "--offloads takes on or off" ;; esac
                shift
                ;;
            --profile) PROFILE=1 ;;
            --no-build) BUILD=0 ;;
            --no-install) INSTALL=0 ;;
            -h | --help) usage ;;
            *) die "unknown option '$1' (see --help)" ;;
        esac
        shift
    done
}

# ---------------------------------------------------------------------------------------
# Tools and build

install_tools() {
    local -A pkg_of=([wrk]=wrk [iperf3]=iperf3 [haproxy]=haproxy [trafgen]=netsniff-ng
        [nft]=nftables [ethtool]=ethtool [curl]=curl [python3]=python3 [ip]=iproute2
        [ss]=iproute2 [timeout]=coreutils [awk]=gawk)
    [ "$PROFILE" = 1 ] && pkg_of[perf]=linux-perf
    local tool missing=()
    for tool in "${!pkg_of[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg_of[$tool]}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [ "$INSTALL" = 1 ] || die "missing: ${missing[*]} (install them, or drop --no-install)"
    command -v apt-get >/dev/null 2>&1 || die "missing: ${missing[*]}, and there is no apt-get to install them"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq >/dev/null || die "apt-get update failed"
    timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
    for tool in "${!pkg_of[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is still missing after installing ${pkg_of[$tool]}"
    done
}

build_failed() {
    tail -n 30 "$OUT/raw/build.txt" >&2
    die "cargo build failed (whole log: $OUT/raw/build.txt)"
}

build_masq() {
    if [ "$BUILD" = 0 ]; then
        BIN=${MASQ_BIN_DIR:-$REPO/target/release}
    else
        log "building masq (cargo build --release --workspace --bins)"
        local cmd="cd '$REPO' && cargo build --release --workspace --bins"
        if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && ! command -v cargo >/dev/null 2>&1; then
            # Under sudo, root often has no cargo: build as the user who has it, in their tree
            # (the log is written by this script, as root: on purpose).
            # shellcheck disable=SC2024
            sudo -u "$SUDO_USER" -H ${CARGO_TARGET_DIR:+CARGO_TARGET_DIR="$CARGO_TARGET_DIR"} bash -lc "$cmd" \
                >"$OUT/raw/build.txt" 2>&1 || build_failed
        else
            command -v cargo >/dev/null 2>&1 || die "cargo is not in PATH (build first and use --no-build)"
            bash -c "$cmd" >"$OUT/raw/build.txt" 2>&1 || build_failed
        fi
        BIN=${CARGO_TARGET_DIR:-$REPO/target}/release
    fi
    local b
    for b in masqd masqadm masq-labsrv; do
        [ -x "$BIN/$b" ] || die "$BIN/$b is missing"
    done
}

# ---------------------------------------------------------------------------------------
# The lab

ns() { echo "$P-$1"; }

in_ns() {
    local n=$1
    shift
    ip netns exec "$(ns "$n")" "$@"
}

# Whether a process runs (a zombie does not).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# Whether a pid runs inside one of this lab's namespaces (pids get reused).
in_lab() {
    [[ ${1:-} =~ ^[0-9]+$ ]] && alive "$1" || return 1
    ip netns identify "$1" 2>/dev/null | grep -q "^$P-"
}

# SIGTERM, up to $2 seconds, then SIGKILL; reaps it if it is our child.
stop_pid() {
    local pid=$1 grace=${2:-5}
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while alive "$pid" && [ $SECONDS -lt "$deadline" ]; do sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# Waits up to $1 seconds for a command to succeed.
wait_until() {
    local limit=$1 deadline
    shift
    deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

listening() { in_ns "$1" ss -Hln"$2" "sport = :$3" | grep -q .; }

mac_of() { ip -n "$(ns "$1")" -br link show dev "$2" | awk '{ print $3 }'; }

masqadm() { in_ns dir "$BIN/masqadm" --socket "$STATE/masqd.sock" "$@"; }

LAB_OWNED=0
REPORTED=0
BG_PIDS=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # Back to the terminal: a signal can arrive while a tool's output is redirected.
    exec 1>&3 2>&4
    local pid
    for pid in "${BG_PIDS[@]}"; do
        alive "$pid" && stop_pid "$pid" 2
    done
    if [ "$LAB_OWNED" = 1 ]; then
        "$LAB" down >/dev/null 2>&1 || warn "lab.sh down failed: check with MASQ_LAB_PREFIX=$P scripts/lab.sh status"
    fi
    if [ "$REPORTED" = 0 ] && [ -s "${SAMPLES:-/nonexistent}" ]; then
        echo "bench.sh: stopped early (exit $rc); reporting what was measured" >&2
        report partial || true
    fi
    [ -n "${TOOLS:-}" ] && rm -rf "$TOOLS"
    exit "$rc"
}

lab_up() {
    export MASQ_LAB_PREFIX=$P MASQ_LAB_STATE=$STATE MASQ_BIN_DIR=$BIN MASQ_LAB_OFFLOADS=$OFFLOADS
    local n
    for n in client dir sw rs1 rs2 lan router rclient; do
        [ ! -e "/run/netns/$(ns "$n")" ] || die "a lab with prefix '$P' is already up ($(ns "$n")); take it down (MASQ_LAB_PREFIX=$P scripts/lab.sh down) or choose another MASQ_LAB_PREFIX"
    done
    LAB_OWNED=1
    log "bringing the lab up (prefix $P, offloads $OFFLOADS)"
    MASQ_LAB_ROUTED=0 "$LAB" up >"$OUT/raw/lab-up.txt" 2>&1 || {
        cat "$OUT/raw/lab-up.txt" >&2
        die "lab.sh up failed"
    }

    # masqd runs only while a masq contender is measured: lab.sh's is stopped now.
    local pid
    pid=$(cat "$STATE/masqd.pid" 2>/dev/null || true)
    in_lab "$pid" && stop_pid "$pid" 10
    rm -f "$STATE/masqd.pid"
    guard_gone || die "masqd left its nftables table (netdev masq_guard_*) behind"

    # The real servers keep no TIME_WAIT: the direct path and the VIP paths reach them with
    # the same 4-tuples but other timestamps and sequence numbers, and an old TIME_WAIT
    # would stall the next contender's new connections for a second (PAWS).
    for n in rs1 rs2; do
        in_ns "$n" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
    done
    # UDP to port 7 is counted and dropped on RS1's interface: packets received at the RS.
    in_ns rs1 nft -f - <<EOF || die "cannot load RS1's UDP counter (nft)"
table netdev masq_bench {
    counter udp_in { }
    chain ingress {
        type filter hook ingress device "$P-r1" priority 0; policy accept;
        ip saddr $CLIENT_IP udp dport $UDP_PORT counter name "udp_in" drop
    }
}
EOF
    DIR_EXT_MAC=$(mac_of dir "$P-ext")
    CLIENT_MAC=$(mac_of client "$P-cli")
    TW_REUSE_DIR=$(in_ns dir sysctl -n net.ipv4.tcp_tw_reuse)
}

# masqd's kernel guard tables: netdev masq_guard_ and a hash of its socket path.
guard_tables() { in_ns dir nft list tables netdev 2>/dev/null | awk '$3 ~ /^masq_guard_/ { print $3 }'; }
guard_gone() { [ -z "$(guard_tables)" ]; }

# ---------------------------------------------------------------------------------------
# The contenders. Each `up_NAME` prepares the director and sets
#   T_HTTP   the addresses wrk talks to (one VIP, or one per wrk thread)
#   T_IPERF  iperf3's server address (RS1 behind it)
#   T_UDP    where the UDP flow goes (RS1 behind it), empty when the contender has no UDP
#   T_PIDS   the director's processes whose CPU time is the director's, empty when the work
#            happens in the kernel (then the whole machine's busy time is counted)
#   T_CPU    how the director's CPU is counted, in words
# and `down_NAME` undoes it, leaving ip_forward=0 and no contender running.

reset_target() {
    T_HTTP=()
    T_IPERF=
    T_UDP=
    T_PIDS=()
    T_CPU=
}

# Prints why a contender cannot run here (and fails), or nothing.
unavailable() {
    case $1 in
        direct | nftables | haproxy | masq) return 0 ;;
        masq-*)
            local io extra=()
            masq_variant "$1"
            if [ "$io" = xdp ] && [ "$OFFLOADS" = on ]; then
                echo "needs --offloads off (AF_XDP frames carry no checksum-offload state)"
                return 1
            fi
            "$BIN/masqd" --io "$io" "${extra[@]}" --help >/dev/null 2>&1 && return 0
            echo "not implemented yet (this masqd refuses --io $io ${extra[*]})"
            ;;
        *) echo "unknown contender (known: ${CONTENDERS_ALL[*]})" ;;
    esac
    return 1
}

up_direct() {
    in_ns dir sysctl -qw net.ipv4.ip_forward=1
    T_HTTP=("$RS1_IP" "$RS2_IP")
    T_IPERF=$RS1_IP
    T_UDP=$RS1_IP
    T_CPU="whole machine (/proc/stat busy of all CPUs: load generator, servers and any other tenant included): kernel forwarding runs in softirq, in no process of its own"
}

down_direct() { in_ns dir sysctl -qw net.ipv4.ip_forward=0; }

up_nftables() {
    in_ns dir nft -f - <<EOF || return 1
table ip masq_bench {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr $VIP tcp dport $HTTP_PORT dnat to numgen inc mod 2 map { 0 : $RS1_IP, 1 : $RS2_IP }
        ip daddr $VIP tcp dport $IPERF_PORT dnat to $RS1_IP
        ip daddr $VIP udp dport $UDP_PORT dnat to $RS1_IP
    }
}
EOF
    in_ns dir sysctl -qw net.ipv4.ip_forward=1
    T_HTTP=("$VIP")
    T_IPERF=$VIP
    T_UDP=$VIP
    T_CPU="whole machine (/proc/stat busy of all CPUs: load generator, servers and any other tenant included): kernel NAT runs in softirq, in no process of its own"
}

down_nftables() {
    in_ns dir sysctl -qw net.ipv4.ip_forward=0
    in_ns dir nft delete table ip masq_bench 2>/dev/null || true
}

HAPROXY_PID=
up_haproxy() {
    local cfg=$STATE/bench-haproxy.cfg idle=$((DUR + 30))
    cat >"$cfg" <<EOF
global
    maxconn 4096

defaults
    mode tcp
    timeout connect 3s
    timeout client ${idle}s
    timeout server ${idle}s

frontend http
    bind $VIP:$HTTP_PORT
    default_backend http

backend http
    balance roundrobin
    server rs1 $RS1_IP:$HTTP_PORT
    server rs2 $RS2_IP:$HTTP_PORT

frontend iperf
    bind $VIP:$IPERF_PORT
    default_backend iperf

backend iperf
    server rs1 $RS1_IP:$IPERF_PORT
EOF
    # HAProxy opens a connection to a real server per client connection, from the DIP.
    in_ns dir sysctl -qw net.ipv4.tcp_tw_reuse=1
    # -db: in the foreground, so $! is HAProxy itself (ip netns exec execs it).
    ip netns exec "$(ns dir)" haproxy -db -f "$cfg" </dev/null >"$STATE/bench-haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    echo "$HAPROXY_PID" >"$STATE/bench-haproxy.pid"
    if ! wait_until 10 listening dir t "$HTTP_PORT" || ! wait_until 5 listening dir t "$IPERF_PORT"; then
        tail -n 5 "$STATE/bench-haproxy.log" >&2
        return 1
    fi
    T_HTTP=("$VIP")
    T_IPERF=$VIP
    T_PIDS=("$HAPROXY_PID")
    T_CPU="haproxy process (utime+stime of all its threads)"
}

down_haproxy() {
    stop_pid "$HAPROXY_PID" 5
    cp "$STATE/bench-haproxy.log" "$OUT/raw/haproxy.log" 2>/dev/null || true
    rm -f "$STATE/bench-haproxy.pid"
    in_ns dir sysctl -qw net.ipv4.tcp_tw_reuse="$TW_REUSE_DIR"
}

# Splits contender name $1 (masq-IO[:ARG…]) into the caller's `io` and `extra` (an array).
masq_variant() {
    local rest=${1#masq-}
    io=${rest%%:*}
    extra=()
    if [ "$rest" != "$io" ]; then
        IFS=: read -ra extra <<<"${rest#*:}"
    fi
}

MASQD_PID=
# masqd with its default back end (no argument), or as contender $1 (masq-IO[:ARG…]).
up_masq() {
    local io= extra=()
    [ -n "${1:-}" ] && masq_variant "$1"
    in_ns dir sysctl -qw net.ipv4.ip_forward=0
    local args=(--vip-iface "$P-ext" --dip-iface "$P-int" --socket "$STATE/masqd.sock")
    [ -n "$io" ] && args+=(--io "$io")
    local more=()
    [ -n "${MASQ_LAB_MASQD_ARGS:-}" ] && read -ra more <<<"$MASQ_LAB_MASQD_ARGS"
    extra+=("${more[@]}")
    echo "--- $(date) masqd ${args[*]} ${extra[*]}" >>"$STATE/masqd.log"
    ip netns exec "$(ns dir)" "$BIN/masqd" "${args[@]}" "${extra[@]}" </dev/null >>"$STATE/masqd.log" 2>&1 &
    MASQD_PID=$!
    echo "$MASQD_PID" >"$STATE/masqd.pid"
    wait_until 20 masqadm -L -n || {
        tail -n 5 "$STATE/masqd.log" >&2
        return 1
    }
    masqadm -A -t "$VIP:$HTTP_PORT" -s rr &&
        masqadm -a -t "$VIP:$HTTP_PORT" -r "$RS1_IP:$HTTP_PORT" -m &&
        masqadm -a -t "$VIP:$HTTP_PORT" -r "$RS2_IP:$HTTP_PORT" -m &&
        masqadm -A -t "$VIP:$IPERF_PORT" -s rr &&
        masqadm -a -t "$VIP:$IPERF_PORT" -r "$RS1_IP:$IPERF_PORT" -m &&
        masqadm -A -u "$VIP:$UDP_PORT" -s rr &&
        masqadm -a -u "$VIP:$UDP_PORT" -r "$RS1_IP:$UDP_PORT" -m || return 1
    T_HTTP=("$VIP")
    T_IPERF=$VIP
    T_UDP=$VIP
    T_PIDS=("$MASQD_PID")
    T_CPU="masqd process (utime+stime of all its threads; the kernel's receive softirq before the AF_PACKET tap is not in it)"
}

down_masq() {
    if [ -n "$MASQD_PID" ]; then
        masqadm -L -n --stats >"$OUT/raw/$RUN_ID-masq-stats.txt" 2>&1 || true
        stop_pid "$MASQD_PID" 10
        cp "$STATE/masqd.log" "$OUT/raw/masqd.log" 2>/dev/null || true
    fi
    MASQD_PID=
    rm -f "$STATE/masqd.pid"
    local table
    for table in $(guard_tables); do
        warn "masqd left its table netdev $table behind; removing it"
        in_ns dir nft delete table netdev "$table" || true
    done
}

contender_up() {
    case $1 in
        masq-*) up_masq "$1" ;;
        *) "up_$1" ;;
    esac
}

contender_down() {
    case $1 in
        masq-*) down_masq ;;
        *) "down_$1" ;;
    esac
}

# ---------------------------------------------------------------------------------------
# Measurements

# One sample of the current round and contender: metric, value (a number, else null), note.
emit() {
    local metric=$1 value=$2 note=${3:-}
    [[ $value =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] || value=null
    note=${note//[\"\\]/\'}
    printf '{"round":%d,"position":%d,"contender":"%s","metric":"%s","value":%s,"steal_pct":%s,"others_cpus":%s,"note":"%s"}\n' \
        "$ROUND" "$POSITION" "$CONTENDER" "$metric" "$value" "${STEAL_PCT:-null}" "${OTHERS_CPUS:-null}" \
        "${note//[^[:print:]]/ }" >>"$SAMPLES"
}

# CPU bookkeeping around one load. A snapshot is one line: the machine's busy, total and
# steal ticks (/proc/stat), the director processes' utime+stime, the lab's (LAB_PIDS: every
# process in the lab's namespaces and the kernel's ksoftirqd threads), the ticks of this
# script's finished children (the load generators: wrk, trafgen), and the wall clock.
cpu_snapshot() {
    local busy total steal dir lab child
    read -r busy total steal < <(awk '/^cpu / { print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9, $9; exit }' /proc/stat)
    dir=$(proc_ticks "${T_PIDS[@]}")
    lab=$(proc_ticks "${LAB_PIDS[@]}")
    child=$(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat")
    echo "$busy $total $steal $dir $lab $child $(date +%s.%N)"
}

# utime+stime ticks of the given processes (all their threads); gone ones count 0.
proc_ticks() {
    [ $# -gt 0 ] || {
        echo 0
        return
    }
    local files=() pid
    for pid in "$@"; do files+=("/proc/$pid/stat"); done
    awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }' "${files[@]}" 2>/dev/null || echo 0
}

# The processes whose CPU is the lab's: everything in its namespaces now (servers, the
# director's daemon) and ksoftirqd, which runs the softirq work the kernel defers.
lab_pids() {
    local n
    LAB_PIDS=()
    for n in client dir sw rs1 rs2; do
        mapfile -t -O "${#LAB_PIDS[@]}" LAB_PIDS < <(ip netns pids "$(ns "$n")" 2>/dev/null)
    done
    mapfile -t -O "${#LAB_PIDS[@]}" LAB_PIDS < <(ps -eo pid=,comm= | awk '$2 ~ /^ksoftirqd\// { print $1 }')
}

# Sets from two snapshots: CPU_MACHINE_NS (busy time of all CPUs), CPU_PROC_NS (the
# director's processes), CPU_LAB_NS (the lab's processes + the finished load generators),
# STEAL_PCT, OTHERS_CPUS (how many CPUs the machine's other work kept busy on average:
# other tenants of a shared machine; the noise to watch) and CPU_ELAPSED (seconds).
cpu_delta() {
    read -r CPU_MACHINE_NS CPU_PROC_NS CPU_LAB_NS STEAL_PCT OTHERS_CPUS CPU_ELAPSED < <(
        awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" 'BEGIN {
            split(a, x, " "); split(b, y, " ")
            tot = y[2] - x[2]
            busy = y[1] - x[1]; lab = y[5] - x[5] + y[6] - x[6]; secs = y[7] - x[7]
            others = (busy > lab && secs > 0) ? (busy - lab) / hz / secs : 0
            printf "%.0f %.0f %.0f %.1f %.2f %.3f\n", busy * 1e9 / hz, (y[4] - x[4]) * 1e9 / hz,
                lab * 1e9 / hz, (tot > 0 ? 100 * (y[3] - x[3]) / tot : 0), others, secs
        }'
    )
}

# ns of CPU per packet, or nothing when there were no packets.
per_pkt() { awk -v ns="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", ns / n }'; }

# The director's CPU per packet: its processes', or the whole machine's for kernel paths.
director_ns_per_pkt() {
    if [ ${#T_PIDS[@]} -gt 0 ]; then per_pkt "$CPU_PROC_NS" "$1"; else per_pkt "$CPU_MACHINE_NS" "$1"; fi
}

client_link_packets() {
    in_ns client cat "/sys/class/net/$P-cli/statistics/rx_packets" "/sys/class/net/$P-cli/statistics/tx_packets" |
        awk '{ s += $1 } END { print s }'
}

# perf record of the director's process for $1 seconds into DIR/profile/NAME.
profile_start() {
    PERF_PID=
    [ "$PROFILE" = 1 ] && [ "$ROUND" = 1 ] && [[ $CONTENDER == masq* ]] && [ ${#T_PIDS[@]} -gt 0 ] || return 0
    mkdir -p "$OUT/profile"
    PERF_OUT=$OUT/profile/$CONTENDER-$1
    timeout -k 3 $((DUR + 10)) perf record -q -F 999 -g -p "${T_PIDS[0]}" -o "$PERF_OUT.data" -- sleep "$DUR" \
        >/dev/null 2>"$PERF_OUT.err" &
    PERF_PID=$!
    BG_PIDS+=("$PERF_PID")
}

profile_end() {
    [ -n "${PERF_PID:-}" ] || return 0
    wait "$PERF_PID" 2>/dev/null || true
    {
        echo "# perf record -F 999 -g of $CONTENDER (pid ${T_PIDS[0]}), $DUR s; by shared object, then by symbol"
        timeout 120 perf report -i "$PERF_OUT.data" --stdio --no-children -g none --sort dso
        timeout 120 perf report -i "$PERF_OUT.data" --stdio --no-children -g none --sort comm,dso,sym \
            --percent-limit 0.5
    } 2>/dev/null | grep -v '^#\|^$' >"$PERF_OUT.txt" || warn "perf report failed for $PERF_OUT.data"
    PERF_PID=
}

# wrk against the contender: $1 close|ka, $2 the raw output file.
run_wrk() {
    local kind=$1 raw=$2 secs=${3:-$DUR}
    local args=(-t2 -c32 -d"${secs}s" --timeout 2s --latency)
    [ "$kind" = close ] && args+=(-H 'Connection: close')
    if [ ${#T_HTTP[@]} -gt 1 ]; then
        # One wrk thread per address: the direct path reaches both real servers too.
        local lua=$STATE/bench-split.lua
        {
            echo "local hosts = { $(printf '"%s", ' "${T_HTTP[@]}")}"
            echo 'local n = 0'
            echo 'function setup(thread)'
            echo '    n = n + 1'
            echo "    thread.addr = wrk.lookup(hosts[(n - 1) % #hosts + 1], \"$HTTP_PORT\")[1]"
            echo 'end'
        } >"$lua"
        args+=(-s "$lua")
    fi
    in_ns client timeout -k 5 $((secs + 20)) wrk "${args[@]}" "http://${T_HTTP[0]}:$HTTP_PORT/" >"$raw" 2>&1
}

# Prints: requests/s p50_ms p99_ms errors (socket errors + non-2xx), or fails.
parse_wrk() { python3 "$TOOLS/bench.py" wrk "$1"; }

test_close() {
    local raw=$OUT/raw/$RUN_ID-close.txt rps p50 p99 errs
    local s0 s1
    s0=$(cpu_snapshot)
    run_wrk close "$raw" || true
    s1=$(cpu_snapshot)
    cpu_delta "$s0" "$s1"
    if read -r rps p50 p99 errs < <(parse_wrk "$raw"); then
        emit conn_rps "$rps"
        emit close_p50_ms "$p50"
        emit close_p99_ms "$p99"
        emit close_errors "$errs"
        RES+=" conn/s=$rps"
    else
        emit conn_rps null "wrk failed: $(tail -n 1 "$raw")"
        RES+=" conn/s=FAILED"
    fi
}

test_keepalive() {
    local raw=$OUT/raw/$RUN_ID-ka.txt rps p50 p99 errs p0 p1 s0 s1 pkts
    p0=$(client_link_packets)
    profile_start ka
    s0=$(cpu_snapshot)
    run_wrk ka "$raw" || true
    s1=$(cpu_snapshot)
    profile_end
    p1=$(client_link_packets)
    cpu_delta "$s0" "$s1"
    pkts=$((p1 - p0))
    if read -r rps p50 p99 errs < <(parse_wrk "$raw"); then
        emit ka_rps "$rps"
        emit ka_p50_ms "$p50"
        emit ka_p99_ms "$p99"
        emit ka_errors "$errs"
        emit ka_cpu_ns "$(director_ns_per_pkt "$pkts")"
        emit ka_lab_ns "$(per_pkt "$CPU_LAB_NS" "$pkts")"
        emit ka_machine_ns "$(per_pkt "$CPU_MACHINE_NS" "$pkts")"
        RES+=" ka=$rps p99=${p99}ms"
    else
        emit ka_rps null "wrk failed: $(tail -n 1 "$raw")"
        RES+=" ka=FAILED"
    fi
}

test_tcp() {
    local raw=$OUT/raw/$RUN_ID-iperf3.json srv gbps retr s0 s1
    in_ns rs1 timeout -k 3 $((DUR + 30)) iperf3 -s -1 -B "$RS1_IP" -p "$IPERF_PORT" >"$STATE/bench-iperf3-s.out" 2>&1 &
    srv=$!
    BG_PIDS+=("$srv")
    if ! wait_until 5 listening rs1 t "$IPERF_PORT"; then
        stop_pid "$srv" 2
        emit tcp_gbps null "iperf3 -s did not start"
        RES+=" tcp=FAILED"
        return
    fi
    profile_start tcp
    s0=$(cpu_snapshot)
    in_ns client timeout -k 3 $((DUR + 20)) iperf3 -c "$T_IPERF" -p "$IPERF_PORT" -t "$DUR" -J \
        --connect-timeout 3000 >"$raw" 2>&1 || true
    s1=$(cpu_snapshot)
    profile_end
    cpu_delta "$s0" "$s1"
    # The server ends by itself after its one test; a failed client leaves it waiting.
    wait_until 5 bash -c "! kill -0 $srv 2>/dev/null" || stop_pid "$srv" 2
    wait "$srv" 2>/dev/null || true
    if read -r gbps retr < <(python3 "$TOOLS/bench.py" iperf3 "$raw"); then
        emit tcp_gbps "$gbps"
        emit tcp_retransmits "$retr"
        RES+=" tcp=${gbps}Gbit/s"
    else
        emit tcp_gbps null "iperf3 failed: $(grep -o '"error":.*' "$raw" | head -c 200)"
        RES+=" tcp=FAILED"
    fi
}

udp_counter() { in_ns rs1 nft list counter netdev masq_bench udp_in | awk '/packets/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'; }

udp_counter_reset() { in_ns rs1 nft reset counter netdev masq_bench udp_in >/dev/null; }

# trafgen from the client on one CPU, for at most $1 seconds (then SIGINT, which it ends
# on): $2 the packet file, then trafgen's own options. It leaves the host's socket memory
# and IRQ settings alone.
trafgen_run() {
    local secs=$1 conf=$2
    shift 2
    in_ns client timeout -s INT -k 3 "$secs" trafgen --dev "$P-cli" --conf "$conf" --cpus 1 \
        --no-sock-mem --notouch-irq "$@"
}

test_udp() {
    if [ -z "$T_UDP" ]; then
        emit udp_kpps null "n/a: no UDP"
        RES+=" udp=n/a"
        return
    fi
    # 64-byte frames: 14 Ethernet + 20 IPv4 + 8 UDP + 22 payload; one flow (fixed ports), sent
    # to the director's MAC as a router would; checksums filled in by trafgen.
    local conf=$STATE/bench-udp.trafgen raw=$OUT/raw/$RUN_ID-udp.txt
    cat >"$conf" <<EOF
{
    eth(da=$DIR_EXT_MAC, sa=$CLIENT_MAC, type=0x0800),
    ipv4(sa=$CLIENT_IP, da=$T_UDP, ttl=64, df),
    udp(sp=$UDP_SRC_PORT, dp=$UDP_PORT),
    fill(0x41, 22)
}
EOF
    # A slow trickle first: the director resolves RS1 and sets its connection up.
    udp_counter_reset
    trafgen_run 10 "$conf" -n 200 --gap 1000us >/dev/null 2>&1 || true
    sleep 0.3
    local warm
    warm=$(udp_counter)
    if [ "${warm:-0}" -lt 100 ]; then
        emit udp_kpps null "only ${warm:-0} of 200 warm-up packets reached RS1"
        RES+=" udp=FAILED(${warm:-0}/200)"
        return
    fi
    udp_counter_reset
    profile_start udp
    local s0 s1 got sent rc=0
    s0=$(cpu_snapshot)
    trafgen_run "$DUR" "$conf" >"$raw" 2>&1 || rc=$?
    s1=$(cpu_snapshot)
    profile_end
    sleep 0.2
    got=$(udp_counter)
    cpu_delta "$s0" "$s1"
    sent=$(grep -oE '[0-9]+ packets outgoing' "$raw" | awk '{ s += $1 } END { print s + 0 }')
    if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then
        emit udp_kpps null "trafgen exited $rc: $(tail -n 1 "$raw")"
        RES+=" udp=FAILED"
        return
    fi
    emit udp_kpps "$(awk -v n="$got" -v t="$CPU_ELAPSED" 'BEGIN { printf "%.1f", n / t / 1000 }')"
    emit udp_sent_kpps "$(awk -v n="$sent" -v t="$CPU_ELAPSED" 'BEGIN { printf "%.1f", n / t / 1000 }')"
    emit udp_cpu_ns "$(director_ns_per_pkt "$got")"
    emit udp_lab_ns "$(per_pkt "$CPU_LAB_NS" "$got")"
    emit udp_machine_ns "$(per_pkt "$CPU_MACHINE_NS" "$got")"
    RES+=" udp=$(awk -v n="$got" -v t="$CPU_ELAPSED" 'BEGIN { printf "%.0f", n / t / 1000 }')kpps"
}

# Whether one request reaches a real server through the contender, from every address.
check_path() {
    local host out _
    for host in "${T_HTTP[@]}"; do
        for _ in 1 2 3; do
            out=$(in_ns client curl -s --max-time 3 "http://$host:$HTTP_PORT/" 2>/dev/null) || true
            [[ $out == RS* ]] && break
            sleep 0.5
        done
        [[ $out == RS* ]] || return 1
    done
}

run_contender() {
    CONTENDER=$3
    ROUND=$1
    POSITION=$2
    RUN_ID=r$ROUND-$CONTENDER
    STEAL_PCT=null
    OTHERS_CPUS=null
    RES=
    reset_target
    log "round $ROUND/$ROUNDS, $POSITION/${#RUN[@]}: $CONTENDER"
    if ! contender_up "$CONTENDER" || ! check_path; then
        emit setup null "set-up or first request failed"
        warn "$CONTENDER: set-up or the first request through it failed; skipped this round"
        contender_down "$CONTENDER" || true
        return
    fi
    echo "$T_CPU" >"$OUT/raw/cpu-method-$CONTENDER.txt"
    lab_pids
    run_wrk ka "$OUT/raw/$RUN_ID-warmup.txt" "$WARMUP" || true
    # A failed measurement is recorded and the next one runs.
    test_close || warn "$CONTENDER: the new-connections run failed"
    sleep 1
    test_keepalive || warn "$CONTENDER: the keep-alive run failed"
    sleep 1
    test_tcp || warn "$CONTENDER: the iperf3 run failed"
    sleep 1
    test_udp || warn "$CONTENDER: the UDP run failed"
    contender_down "$CONTENDER" || warn "$CONTENDER: tear-down failed"
    log "   $CONTENDER:$RES"
    # The real servers log every connection; start each contender with short logs.
    local f
    for f in "$STATE"/rs?.log "$STATE"/rs?-http.out; do
        [ -f "$f" ] && : >"$f"
    done
    sleep 1
}

# ---------------------------------------------------------------------------------------
# The report: results.json, summary.md, chart.svg (python3's standard library only).

report() {
    BENCH_PARTIAL=${1:-} BENCH_OUT=$OUT BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DUR \
        BENCH_OFFLOADS=$OFFLOADS BENCH_CONTENDERS="${RUN[*]}" BENCH_SKIPPED="$SKIPPED" \
        BENCH_START="$START_ISO" BENCH_LOAD_START="$LOAD_START" BENCH_LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)" \
        BENCH_KERNEL="$(uname -r)" BENCH_CPUS="$(nproc)" BENCH_GIT="$GIT_REV" BENCH_SECONDS=$((SECONDS - START_SECONDS)) \
        python3 "$TOOLS/bench.py" report "$SAMPLES" "$OUT/raw"
    REPORTED=1
}

write_tools() {
    cat >"$TOOLS/bench.py" <<'PY'
"""bench.sh's helpers: parse wrk and iperf3 output; write results.json, summary.md, chart.svg."""
import json
import os
import re
import statistics
import sys

UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}

# key, label, unit, higher is better, shown in the table and chart
METRICS = [
    ("conn_rps", "new connections/s (wrk, Connection: close)", "conn/s", True),
    ("close_p50_ms", "latency p50, Connection: close", "ms", False),
    ("close_p99_ms", "latency p99, Connection: close", "ms", False),
    ("ka_rps", "keep-alive requests/s (wrk)", "req/s", True),
    ("ka_p50_ms", "latency p50, keep-alive", "ms", False),
    ("ka_p99_ms", "latency p99, keep-alive", "ms", False),
    ("tcp_gbps", "TCP throughput, 1 stream (iperf3)", "Gbit/s", True),
    ("udp_kpps", "UDP 64 B packets/s received at RS1", "kpps", True),
    ("udp_sent_kpps", "UDP 64 B packets/s sent by trafgen (more than received: lost in the director)", "kpps", True),
    ("udp_cpu_ns", "director CPU per forwarded packet, UDP run (method below)", "ns", False),
    ("udp_lab_ns", "lab CPU per forwarded packet, UDP run", "ns", False),
    ("ka_cpu_ns", "director CPU per client-link packet, keep-alive run (method below)", "ns", False),
    ("ka_lab_ns", "lab CPU per client-link packet, keep-alive run", "ns", False),
]
SHORT = {
    "conn_rps": "new conn/s", "close_p50_ms": "p50 close", "close_p99_ms": "p99 close",
    "ka_rps": "keep-alive req/s", "ka_p50_ms": "p50 k-a", "ka_p99_ms": "p99 k-a",
    "tcp_gbps": "TCP Gbit/s", "udp_kpps": "UDP kpps", "udp_sent_kpps": "UDP sent kpps", "udp_cpu_ns": "dir CPU/pkt UDP",
    "udp_lab_ns": "lab CPU/pkt UDP", "ka_cpu_ns": "dir CPU/pkt k-a",
    "ka_lab_ns": "lab CPU/pkt k-a",
}
BASE = "nftables"
# Rows whose method differs by contender (director process, or the whole machine).
MIXED = {"udp_cpu_ns", "ka_cpu_ns"}
# Rows the chart leaves out: mixed methods, and the generator's rate (not a result).
NOT_CHARTED = MIXED | {"udp_sent_kpps"}
COLORS = ["#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def ms(value, unit):
    return float(value) * UNIT_MS[unit]


def parse_wrk(path):
    text = open(path, errors="replace").read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        return 1
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M):
        lat[pct] = ms(val, unit)
    errs = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errs += int(non2xx.group(1)) if non2xx else 0
    print(rps.group(1), "%.3f" % lat.get("50", float("nan")), "%.3f" % lat.get("99", float("nan")), errs)
    return 0


def parse_iperf3(path):
    try:
        data = json.load(open(path))
        end = data["end"]
        bps = end["sum_received"]["bits_per_second"]
    except (ValueError, KeyError, OSError):
        return 1
    print("%.3f" % (bps / 1e9), end.get("sum_sent", {}).get("retransmits", 0))
    return 0


def fmt(v):
    if v is None:
        return "—"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def summarise(samples, contenders, kinds):
    """Median, min, max per metric and contender; ratio to nftables where comparable (the
    director-CPU rows mix a process's time with the whole machine's: no ratio across them)."""
    out = {}
    for key, *_ in METRICS:
        out[key] = {}
        for c in contenders:
            vals = [s["value"] for s in samples
                    if s["contender"] == c and s["metric"] == key and s["value"] is not None]
            if vals:
                out[key][c] = {"median": statistics.median(vals), "min": min(vals),
                               "max": max(vals), "n": len(vals)}
        base = out[key].get(BASE)
        for c, st in out[key].items():
            comparable = key not in MIXED or kinds.get(c) == kinds.get(BASE)
            st["ratio_to_nftables"] = (st["median"] / base["median"]
                                       if base and base["median"] and comparable else None)
    return out


def targets(summary, contenders):
    rows = []

    def ratio(metric, a, b):
        sa, sb = summary[metric].get(a), summary[metric].get(b)
        if not sa or not sb or not sb["median"]:
            return None
        return sa["median"] / sb["median"]

    for m in [c for c in contenders if c.startswith("masq")]:
        for metric, label in [("conn_rps", "new conns/s"), ("ka_rps", "keep-alive req/s"),
                              ("tcp_gbps", "TCP throughput"), ("udp_kpps", "UDP 64 B pps")]:
            rows.append((f"{m} / nftables, {label}", "≥ 1.0", ratio(metric, m, BASE), 1.0, True))
        rows.append((f"{m} / haproxy, new conns/s", "≥ 1.5", ratio("conn_rps", m, "haproxy"), 1.5, True))
        rows.append((f"{m} p99 / nftables p99 (keep-alive)", "≤ 1.2",
                     ratio("ka_p99_ms", m, BASE), 1.2, False))
    out = []
    for name, want, r, bound, higher in rows:
        met = None if r is None else (r >= bound if higher else r <= bound)
        out.append({"target": name, "wanted": want, "ratio": r, "met": met})
    return out


def chart(summary, contenders, path, title):
    metrics = [(k, l, u, h) for k, l, u, h in METRICS
               if k not in NOT_CHARTED
               and any(summary[k].get(c, {}).get("ratio_to_nftables") for c in contenders)]
    n = len(contenders)
    bar, gap = 13, 22
    group = n * bar + gap
    left, top, plot_h = 60, 70, 300
    width = left + group * len(metrics) + 90
    height = top + plot_h + 120
    ymax = 2.0
    for k, *_ in metrics:
        base = summary[k].get(BASE)
        for c in contenders:
            st = summary[k].get(c)
            if st and base and base["median"]:
                ymax = max(ymax, min(st["max"] / base["median"], 4.0))
    ymax = float(int(ymax * 2 + 0.999)) / 2

    def y(v):
        return top + plot_h - min(v, ymax) / ymax * plot_h

    e = []
    e.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">')
    e.append(f'<rect width="{width}" height="{height}" fill="white"/>')
    e.append(f'<text x="{left}" y="22" font-size="15" font-weight="bold">{title}</text>')
    e.append(f'<text x="{left}" y="40" fill="#444">median of the rounds ÷ nftables median '
             f'(whiskers: min–max of the rounds); ↑ higher is better, ↓ lower is better</text>')
    t = 0.0
    while t <= ymax + 1e-9:
        style = 'stroke="#000" stroke-dasharray="4 3"' if t == 1.0 else 'stroke="#ddd"'
        e.append(f'<line x1="{left}" x2="{width - 20}" y1="{y(t):.1f}" y2="{y(t):.1f}" {style}/>')
        e.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:.1f}×</text>')
        t += 0.5
    for gi, (k, label, unit, higher) in enumerate(metrics):
        x0 = left + gi * group + gap / 2
        base = summary[k].get(BASE)
        for ci, c in enumerate(contenders):
            st = summary[k].get(c)
            x = x0 + ci * bar
            color = COLORS[ci % len(COLORS)]
            if not st or not base or not base["median"]:
                e.append(f'<text x="{x + bar / 2:.1f}" y="{y(0) - 3:.1f}" font-size="8" '
                         f'text-anchor="middle" fill="{color}">n/a</text>')
                continue
            r = st["median"] / base["median"]
            lo, hi = st["min"] / base["median"], st["max"] / base["median"]
            e.append(f'<rect x="{x:.1f}" y="{y(r):.1f}" width="{bar - 2}" '
                     f'height="{y(0) - y(r):.1f}" fill="{color}">'
                     f'<title>{c}: {fmt(st["median"])} {unit} ({r:.2f}× nftables)</title></rect>')
            cx = x + (bar - 2) / 2
            e.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(lo):.1f}" y2="{y(hi):.1f}" stroke="#000"/>')
            if r > ymax:
                e.append(f'<text x="{cx:.1f}" y="{top - 4}" font-size="8" text-anchor="middle">{r:.1f}</text>')
        arrow = "↑" if higher else "↓"
        e.append(f'<text transform="translate({x0 + n * bar / 2:.1f},{y(0) + 12:.1f}) rotate(30)" '
                 f'font-size="10">{SHORT[k]} {arrow}</text>')
    lx = left
    for ci, c in enumerate(contenders):
        e.append(f'<rect x="{lx}" y="{height - 22}" width="12" height="12" fill="{COLORS[ci % len(COLORS)]}"/>')
        e.append(f'<text x="{lx + 16}" y="{height - 12}">{c}</text>')
        lx += 30 + 7 * len(c)
    e.append("</svg>")
    open(path, "w").write("\n".join(e) + "\n")


def report(samples_path, raw_dir):
    env = os.environ
    samples = [json.loads(line) for line in open(samples_path) if line.strip()]
    contenders = env["BENCH_CONTENDERS"].split()
    skipped = [s for s in env.get("BENCH_SKIPPED", "").split(";") if s]
    out_dir = env["BENCH_OUT"]
    methods = {}
    for c in contenders:
        p = os.path.join(raw_dir, f"cpu-method-{c}.txt")
        if os.path.exists(p):
            methods[c] = open(p).read().strip()
    kinds = {c: ("machine" if m.startswith("whole machine") else "process") for c, m in methods.items()}
    summary = summarise(samples, contenders, kinds)
    tgt = targets(summary, contenders)
    rounds = sorted({s["round"] for s in samples})
    meta = {
        "started": env["BENCH_START"], "seconds": int(env["BENCH_SECONDS"]),
        "partial": bool(env.get("BENCH_PARTIAL")), "rounds": int(env["BENCH_ROUNDS"]),
        "rounds_done": len(rounds), "duration_s": int(env["BENCH_DURATION"]),
        "offloads": env["BENCH_OFFLOADS"], "kernel": env["BENCH_KERNEL"], "cpus": int(env["BENCH_CPUS"]),
        "git": env["BENCH_GIT"], "loadavg_start": env["BENCH_LOAD_START"],
        "loadavg_end": env["BENCH_LOAD_END"], "contenders": contenders,
        "not_measured": skipped, "cpu_method": methods,
    }
    steal = [s["steal_pct"] for s in samples if s.get("steal_pct") is not None]
    meta["steal_pct_median"] = statistics.median(steal) if steal else None
    meta["steal_pct_max"] = max(steal) if steal else None
    others = [s["others_cpus"] for s in samples if s.get("others_cpus") is not None]
    meta["others_cpus_median"] = statistics.median(others) if others else None
    meta["others_cpus_max"] = max(others) if others else None
    json.dump({"meta": meta, "summary": summary, "targets": tgt, "samples": samples},
              open(os.path.join(out_dir, "results.json"), "w"), indent=1)

    title = (f"masq datapath benchmark: {meta['rounds_done']} round(s) × {meta['duration_s']} s, "
             f"offloads {meta['offloads']}, {meta['cpus']} CPUs")
    chart(summary, contenders, os.path.join(out_dir, "chart.svg"), title)

    L = []
    L.append(f"# {title}")
    L.append("")
    if meta["partial"]:
        L.append("**Partial run: stopped before the end.**")
        L.append("")
    L.append(f"Started {meta['started']}, took {meta['seconds']} s; kernel {meta['kernel']}; "
             f"masq {meta['git']}; load average {meta['loadavg_start']} at the start, "
             f"{meta['loadavg_end']} at the end. During the loads, the machine's other work (other "
             f"tenants: machine busy time less the lab's) kept a median "
             f"{fmt(meta['others_cpus_median'])} and at most {fmt(meta['others_cpus_max'])} of the "
             f"{meta['cpus']} CPUs busy; CPU steal by the host: median "
             f"{fmt(meta['steal_pct_median'])} %, max {fmt(meta['steal_pct_max'])} %.")
    L.append("")
    L.append("Each cell: median of the rounds, [min–max], and × the nftables median. "
             "Latency and CPU: lower is better.")
    L.append("")
    L.append("| metric | " + " | ".join(contenders) + " |")
    L.append("|---|" + "---:|" * len(contenders))
    for key, label, unit, _ in METRICS:
        cells = []
        for c in contenders:
            st = summary[key].get(c)
            if not st:
                # "n/a" (e.g. HAProxy has no UDP) covers every row of that run: udp_*.
                na = [s for s in samples if s["contender"] == c
                      and s["metric"].split("_")[0] == key.split("_")[0]
                      and s["value"] is None and s["note"].startswith("n/a")]
                cells.append("n/a" if na else "—")
                continue
            cell = f"{fmt(st['median'])} [{fmt(st['min'])}–{fmt(st['max'])}]"
            if st["ratio_to_nftables"] is not None:
                cell += f" {st['ratio_to_nftables']:.2f}×"
            cells.append(cell)
        L.append(f"| {label}, {unit} | " + " | ".join(cells) + " |")
    L.append("")
    if skipped:
        L.append("Not measured: " + "; ".join(skipped) + ".")
        L.append("")
    L.append("## Targets (issue #6)")
    L.append("")
    L.append("| target | wanted | measured | |")
    L.append("|---|---|---:|---|")
    for t in tgt:
        r = "—" if t["ratio"] is None else f"{t['ratio']:.2f}"
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "**missed**")
        L.append(f"| {t['target']} | {t['wanted']} | {r} | {verdict} |")
    L.append("")
    L.append("## How the director's CPU is counted")
    L.append("")
    for c in contenders:
        if c in methods:
            L.append(f"- {c}: {methods[c]}")
    L.append("- lab rows, every contender alike: utime+stime of every process in the lab's "
             "namespaces (servers, director daemon), of the load generator (wrk, trafgen) and of "
             "ksoftirqd. The kernel runs most packet work in softirq on whichever task is on "
             "the CPU, here mostly the generator and the servers, so kernel forwarding is "
             "counted too; other tenants' processes are not.")
    L.append("")
    L.append("## Every round")
    L.append("")
    keys = [k for k, *_ in METRICS]
    L.append("| round | # | contender | " + " | ".join(SHORT[k] for k in keys) + " | others' CPUs |")
    L.append("|---|---|---|" + "---:|" * (len(keys) + 1))
    runs = sorted({(s["round"], s["position"], s["contender"]) for s in samples})
    for rnd, pos, c in runs:
        mine = [s for s in samples if (s["round"], s["position"], s["contender"]) == (rnd, pos, c)]
        vals = {s["metric"]: s["value"] for s in mine}
        st = [s["others_cpus"] for s in mine if s.get("others_cpus") is not None]
        L.append(f"| {rnd} | {pos} | {c} | " + " | ".join(fmt(vals.get(k)) for k in keys)
                 + f" | {fmt(max(st)) if st else '—'} |")
    notes = [s for s in samples if s["note"] and not s["note"].startswith("n/a")]
    if notes:
        L.append("")
        L.append("Failures:")
        for s in notes:
            L.append(f"- round {s['round']} {s['contender']} {s['metric']}: {s['note']}")
    errs = [s for s in samples if s["metric"] in ("close_errors", "ka_errors") and s["value"]]
    if errs:
        L.append("")
        L.append("wrk socket errors or non-2xx answers: " + ", ".join(
            f"round {s['round']} {s['contender']} {s['metric'].split('_')[0]} {int(s['value'])}"
            for s in errs) + ".")
    text = "\n".join(L) + "\n"
    open(os.path.join(out_dir, "summary.md"), "w").write(text)
    print(text)
    print(f"results: {out_dir}/results.json, {out_dir}/summary.md, {out_dir}/chart.svg")
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "wrk":
        return parse_wrk(sys.argv[2])
    if cmd == "iperf3":
        return parse_iperf3(sys.argv[2])
    if cmd == "report":
        return report(sys.argv[2], sys.argv[3])
    return 2


sys.exit(main())
PY
}

# ---------------------------------------------------------------------------------------

main() {
    parse_args "$@"
    [ "$(id -u)" -eq 0 ] || die "the lab needs root: sudo $0 $*"
    P=${MASQ_LAB_PREFIX:-mbench}
    [[ $P =~ ^[A-Za-z0-9_]{1,8}$ ]] || die "MASQ_LAB_PREFIX must be 1-8 of [A-Za-z0-9_]"
    STATE=${MASQ_LAB_STATE:-/tmp/masq-lab-$P}
    CLK_TCK=$(getconf CLK_TCK)
    START_SECONDS=$SECONDS
    START_ISO=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    GIT_REV=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)

    mkdir -p "$OUT/raw"
    rm -f "$OUT"/raw/* "$OUT/results.json" "$OUT/summary.md" "$OUT/chart.svg"
    rm -rf "$OUT/profile"
    install_tools
    build_masq
    # With --no-build the binaries need not be the tree's: say where they came from.
    [ "$BUILD" = 1 ] || GIT_REV="binaries from $BIN (tree at $GIT_REV)"

    # Which contenders run.
    local wanted=() c why
    if [ -n "$CONTENDERS_ARG" ]; then
        IFS=, read -ra wanted <<<"$CONTENDERS_ARG"
    else
        wanted=("${CONTENDERS_ALL[@]}")
    fi
    RUN=()
    SKIPPED=
    for c in "${wanted[@]}"; do
        if why=$(unavailable "$c"); then
            RUN+=("$c")
        else
            [ -n "$CONTENDERS_ARG" ] && [[ $why == unknown* ]] && die "$c: $why"
            SKIPPED+="$c: $why;"
        fi
    done
    [ ${#RUN[@]} -gt 0 ] || die "no contender to run"

    SAMPLES=$OUT/raw/samples.jsonl
    : >"$SAMPLES"
    TOOLS=$(mktemp -d /tmp/masq-bench.XXXXXX)
    write_tools

    exec 3>&1 4>&2
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    lab_up

    local per=$((4 * DUR + WARMUP + 12))
    local skipped=${SKIPPED%;}
    log "contenders: ${RUN[*]}${SKIPPED:+ (not measured: ${skipped//;/; })}"
    log "$ROUNDS round(s) of ${#RUN[@]} contenders, about $((ROUNDS * ${#RUN[@]} * per / 60 + 1)) minutes; load average $LOAD_START"
    # Round r starts r-1 places further down the list, and even rounds go backwards: every
    # contender takes every position and follows different neighbours.
    local r i j n=${#RUN[@]}
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((i = 0; i < n; i++)); do
            if ((r % 2)); then j=$(((r - 1 + i) % n)); else j=$(((r - 1 - i + n * n) % n)); fi
            run_contender "$r" $((i + 1)) "${RUN[$j]}"
        done
    done

    "$LAB" down >/dev/null 2>&1 || warn "lab.sh down failed"
    LAB_OWNED=0
    report
}

main "$@"
