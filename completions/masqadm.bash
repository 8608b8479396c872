# bash completion for masqadm(8): ipvsadm 1.31's commands and options, and masq's own
# (--check, --trace, --capture, --sim-request, --socket). A command comes first (after --socket PATH),
# then its options, as with ipvsadm. crates/masqadm/tests/docs.rs checks that every
# option of the grammar is offered here.

_masqadm() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    # bash splits `--socket=PATH` into `--socket`, `=` and `PATH`.
    [[ $cur == = ]] && cur=
    [[ $prev == = ]] && ((COMP_CWORD > 1)) && prev=${COMP_WORDS[COMP_CWORD - 2]}
    COMPREPLY=()

    local ipvsadm_commands="-A --add-service -E --edit-service -D --delete-service -C --clear
        -R --restore -S --save -a --add-server -e --edit-server -d --delete-server
        -L -l --list -Z --zero --set --start-daemon --stop-daemon -h --help -v --version"
    local masq_commands="--check --trace --capture --sim-request"
    local ipvsadm_options="-t --tcp-service -u --udp-service --sctp-service -f --fwmark-service
        -6 --ipv6 -s --scheduler --pe -p --persistent -M --netmask -r --real-server
        -g --gatewaying -i --ipip -m --masquerading --tun-type --tun-port --tun-nocsum
        --tun-csum --tun-remcsum -w --weight -x --u-threshold -y --l-threshold
        -c --connection --timeout --daemon --stats --rate --exact -X --thresholds
        --persistent-conn --tun-info --nosort --sort -o --ops -n --numeric -b --sched-flags
        --syncid --sync-maxlen --mcast-interface --mcast-group --mcast-port --mcast-ttl"
    local trace_options="-t --tcp-service -u --udp-service --count -n --packets --json"
    local sim_request_options="-t --tcp-service -u --udp-service --from --count -n"
    local schedulers="rr wrr lc wlc sed nq fo ovf sh dh mh lblc lblcr twos none"
    local sched_flags="sh-fallback sh-port mh-fallback mh-port flag-1 flag-2 flag-3"

    # The values options take.
    case $prev in
        -s | --scheduler)
            mapfile -t COMPREPLY < <(compgen -W "$schedulers" -- "$cur")
            return
            ;;
        -b | --sched-flags)
            mapfile -t COMPREPLY < <(compgen -W "$sched_flags" -- "$cur")
            return
            ;;
        --tun-type)
            mapfile -t COMPREPLY < <(compgen -W "ipip gue gre" -- "$cur")
            return
            ;;
        --start-daemon | --stop-daemon)
            mapfile -t COMPREPLY < <(compgen -W "master backup" -- "$cur")
            return
            ;;
        --socket | --capture)
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
            ;;
        --mcast-interface)
            mapfile -t COMPREPLY < <(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur")
            return
            ;;
        -t | --tcp-service | -u | --udp-service | --sctp-service | -f | --fwmark-service | \
            -r | --real-server | -w | --weight | -x | --u-threshold | -y | --l-threshold | \
            -M | --netmask | --pe | --tun-port | --count | --syncid | --sync-maxlen | \
            --mcast-group | --mcast-port | --mcast-ttl)
            return
            ;;
    esac

    # The command is the first word, or the third after `--socket PATH`.
    local at=1
    if [[ ${COMP_WORDS[1]-} == --socket ]]; then
        at=3
        [[ ${COMP_WORDS[2]-} == = ]] && at=4
    elif [[ ${COMP_WORDS[1]-} == --socket=* ]]; then
        at=2
    fi
    if ((COMP_CWORD <= at)); then
        local offered="$ipvsadm_commands $masq_commands"
        ((at == 1)) && offered+=" --socket"
        mapfile -t COMPREPLY < <(compgen -W "$offered" -- "$cur")
        return
    fi
    case ${COMP_WORDS[at]} in
        --trace | --capture)
            mapfile -t COMPREPLY < <(compgen -W "$trace_options" -- "$cur")
            ;;
        --sim-request)
            mapfile -t COMPREPLY < <(compgen -W "$sim_request_options" -- "$cur")
            ;;
        --check | -h | --help | -v | --version) ;;
        *)
            mapfile -t COMPREPLY < <(compgen -W "$ipvsadm_options" -- "$cur")
            ;;
    esac
}

complete -F _masqadm masqadm
