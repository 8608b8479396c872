# fish completion for masqadm(8): ipvsadm 1.31's commands and options, and masq's own
# (--check, --trace, --capture, --sim-request, --socket). A command comes first (after --socket PATH),
# then its options, as with ipvsadm. crates/masqadm/tests/docs.rs checks that every
# option of the grammar is offered here.

# The command on the line (the first word, or the third after --socket PATH), if any.
function __masqadm_command
    set -l words (commandline -opc)
    set -e words[1]
    if test "$words[1]" = --socket
        set -e words[1..2]
    else if string match -q -- '--socket=*' "$words[1]"
        set -e words[1]
    end
    if set -q words[1]
        echo -- $words[1]
    else
        return 1
    end
end

function __masqadm_needs_command
    not __masqadm_command >/dev/null
end

function __masqadm_traces
    contains -- (__masqadm_command) --trace --capture
end

function __masqadm_sim_requests
    contains -- (__masqadm_command) --sim-request
end

function __masqadm_ipvsadm_options
    set -l command (__masqadm_command); or return 1
    not contains -- $command --trace --capture --sim-request --check -h --help -v --version
end

# Whether the word before the cursor is $argv[1].
function __masqadm_after
    set -l words (commandline -opc)
    test "$words[-1]" = $argv[1]
end

complete -c masqadm -f
complete -c masqadm -n '__masqadm_after --socket' -F
complete -c masqadm -n '__masqadm_after --capture' -F

# The commands.
set -l first -n __masqadm_needs_command
complete -c masqadm $first -s A -l add-service -d 'add virtual service with options'
complete -c masqadm $first -s E -l edit-service -d 'edit virtual service with options'
complete -c masqadm $first -s D -l delete-service -d 'delete virtual service'
complete -c masqadm $first -s C -l clear -d 'clear the whole table'
complete -c masqadm $first -s R -l restore -d 'restore rules from stdin'
complete -c masqadm $first -s S -l save -d 'save rules to stdout'
complete -c masqadm $first -s a -l add-server -d 'add real server with options'
complete -c masqadm $first -s e -l edit-server -d 'edit real server with options'
complete -c masqadm $first -s d -l delete-server -d 'delete real server'
complete -c masqadm $first -s L -s l -l list -d 'list the table'
complete -c masqadm $first -s Z -l zero -d 'zero counters in a service or all services'
complete -c masqadm $first -l set -d 'set connection timeout values (tcp tcpfin udp)'
complete -c masqadm $first -l start-daemon -x -a 'master backup' -d 'start connection sync daemon (refused by masq)'
complete -c masqadm $first -l stop-daemon -x -a 'master backup' -d 'stop connection sync daemon'
complete -c masqadm $first -s h -l help -d 'display the help'
complete -c masqadm $first -s v -l version -d 'display the version'
complete -c masqadm $first -l check -d '(masq) check the host and the lab, with fixes'
complete -c masqadm $first -l trace -d "(masq) show each new connection's NAT stages"
complete -c masqadm $first -l capture -r -F -d "(masq) write those stages' frames to a pcapng file"
complete -c masqadm $first -l sim-request -d "(masq) open connections from the simulated lab's client"
complete -c masqadm -n 'test (count (commandline -opc)) -eq 1' -l socket -r -F -d "(masq) masqd's control socket, before the command"

# ipvsadm's options, after one of its commands.
set -l opt -n __masqadm_ipvsadm_options
complete -c masqadm $opt -s t -l tcp-service -x -d 'TCP service (host[:port])'
complete -c masqadm $opt -s u -l udp-service -x -d 'UDP service (host[:port])'
complete -c masqadm $opt -l sctp-service -x -d 'SCTP service (host[:port])'
complete -c masqadm $opt -s f -l fwmark-service -x -d 'firewall-mark service'
complete -c masqadm $opt -s 6 -l ipv6 -d 'fwmark entry uses IPv6'
complete -c masqadm $opt -s s -l scheduler -x -a 'rr wrr lc wlc sed nq fo ovf sh dh mh lblc lblcr twos none' -d scheduler
complete -c masqadm $opt -l pe -x -a sip -d 'persistence engine'
complete -c masqadm $opt -s p -l persistent -d 'persistent service [timeout]'
complete -c masqadm $opt -s M -l netmask -x -d 'persistent granularity mask'
complete -c masqadm $opt -s r -l real-server -x -d 'real server (host[:port])'
complete -c masqadm $opt -s g -l gatewaying -d 'gatewaying (direct routing; refused by masq)'
complete -c masqadm $opt -s i -l ipip -d 'ipip encapsulation (refused by masq)'
complete -c masqadm $opt -s m -l masquerading -d 'masquerading (NAT)'
complete -c masqadm $opt -l tun-type -x -a 'ipip gue gre' -d 'tunnel type'
complete -c masqadm $opt -l tun-port -x -d 'tunnel destination port'
complete -c masqadm $opt -l tun-nocsum -d 'tunnel encapsulation without checksum'
complete -c masqadm $opt -l tun-csum -d 'tunnel encapsulation with checksum'
complete -c masqadm $opt -l tun-remcsum -d 'tunnel encapsulation with remote checksum'
complete -c masqadm $opt -s w -l weight -x -d 'capacity of real server'
complete -c masqadm $opt -s x -l u-threshold -x -d 'upper threshold of connections'
complete -c masqadm $opt -s y -l l-threshold -x -d 'lower threshold of connections'
complete -c masqadm $opt -s c -l connection -d 'output of current connections'
complete -c masqadm $opt -l timeout -d 'output of timeout (tcp tcpfin udp)'
complete -c masqadm $opt -l daemon -d 'output of daemon information'
complete -c masqadm $opt -l stats -d 'output of statistics information'
complete -c masqadm $opt -l rate -d 'output of rate information'
complete -c masqadm $opt -s X -l exact -d 'expand numbers (display exact values)'
complete -c masqadm $opt -l thresholds -d 'output of thresholds information'
complete -c masqadm $opt -l persistent-conn -d 'output of persistent connection info'
complete -c masqadm $opt -l tun-info -d 'output of tunnel information'
complete -c masqadm $opt -l nosort -d 'disable sorting output of service/server entries'
complete -c masqadm $opt -l sort -d 'does nothing, for backwards compatibility'
complete -c masqadm $opt -s o -l ops -d 'one-packet scheduling'
complete -c masqadm $opt -s n -l numeric -d 'numeric output of addresses and ports'
complete -c masqadm $opt -s b -l sched-flags -x -a 'sh-fallback sh-port mh-fallback mh-port flag-1 flag-2 flag-3' -d 'scheduler flags (comma-separated)'
complete -c masqadm $opt -l syncid -x -d 'syncid for connection sync'
complete -c masqadm $opt -l sync-maxlen -x -d 'max sync message length'
complete -c masqadm $opt -l mcast-interface -x -a '(__fish_print_interfaces)' -d 'multicast interface for connection sync'
complete -c masqadm $opt -l mcast-group -x -d 'IPv4/IPv6 group'
complete -c masqadm $opt -l mcast-port -x -d 'UDP port'
complete -c masqadm $opt -l mcast-ttl -x -d 'multicast TTL'

# masq's --trace and --capture options.
set -l trace -n __masqadm_traces
complete -c masqadm $trace -s t -l tcp-service -x -d 'only this TCP service (VIP:PORT)'
complete -c masqadm $trace -s u -l udp-service -x -d 'only this UDP service (VIP:PORT)'
complete -c masqadm $trace -s n -l count -x -d 'stop after N connections'
complete -c masqadm $trace -l packets -d 'every packet, not only the first ones'
complete -c masqadm $trace -l json -d 'one JSON object a line (--trace only)'

# masq's --sim-request options.
set -l sim -n __masqadm_sim_requests
complete -c masqadm $sim -s t -l tcp-service -x -d 'to this TCP service (VIP:PORT)'
complete -c masqadm $sim -s u -l udp-service -x -d 'to this UDP service (VIP:PORT)'
complete -c masqadm $sim -l from -x -d 'from this simulated client (CIP)'
complete -c masqadm $sim -s n -l count -x -d 'open N connections'
