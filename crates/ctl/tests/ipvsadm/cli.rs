//! Command-line behaviour as observed from ipvsadm 1.31: messages, exit codes, popt's
//! quirks, the legality matrix; and masq's no-tunnel rule.

use masq_ctl::NO_TUNNEL_TYPE;

use crate::{director, err, now, ok, run_args, run_full, sh};

const TRY: &str = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.";

#[test]
fn help_is_ipvsadms_text() {
    let d = director();
    let m = d.control(now());
    let o = sh(&m, "-h");
    assert_eq!((o.stderr.as_str(), o.code), ("", 0));
    assert_eq!(o.stdout.len(), 4645);
    assert!(o.stdout.starts_with(
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  ipvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n"
    ));
    assert!(o.stdout.contains("\n  ipvsadm -h\n\nCommands:\n"));
    assert!(o.stdout.contains(
        "  --syncid sid                        syncid for connection sync (default=255)\n"
    ));
    assert!(o
        .stdout
        .ends_with("  --mcast-ttl ttl                     Multicast TTL (default=1)\n"));
    // The program name replaces argv[0] in the 13 usage lines, nowhere else.
    let help = run_full(&m, "masqadm", &["--help"], None);
    assert_eq!(
        help.stdout.len(),
        4645 + 13 * ("masqadm".len() - "ipvsadm".len())
    );
    assert_eq!(help.stdout.matches("  masqadm ").count(), 13);
    assert_eq!(help.stdout.matches("ipvsadm").count(), 1);
    // Whatever follows -h is never looked at.
    assert_eq!(sh(&m, "-h --bogus").stdout, o.stdout);
}

#[test]
fn version() {
    let d = director();
    let m = d.control(now());
    ok(
        &sh(&m, "-v"),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n",
    );
    ok(
        &run_full(&m, "masqadm", &["--version"], None),
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n",
    );
}

#[test]
fn first_option_must_be_a_command() {
    let d = director();
    let m = d.control(now());
    err(&sh(&m, "-n -L"), TRY, 255);
    err(&sh(&m, "--bogus"), TRY, 255);
    err(&sh(&m, "-t"), TRY, 255);
    err(&sh(&m, "--list=1"), TRY, 255);
    err(&sh(&m, "foo"), TRY, 255);
    err(&sh(&m, "--"), TRY, 255);
    err(
        &run_full(&m, "masqadm", &["-x"], None),
        "Try `masqadm -h' or 'masqadm --help' for more information.",
        255,
    );
    // A second command is an invalid option (exit 2), named as written.
    err(&sh(&m, "-A -t 10.0.0.1:80 -E"), "invalid option `-E'", 2);
    err(&sh(&m, "-L -h"), "invalid option `-h'", 2);
    err(&sh(&m, "-L -nZ"), "invalid option `-nZ'", 2);
}

#[test]
fn popt_errors_exit_255() {
    let d = director();
    let m = d.control(now());
    err(&sh(&m, "-A -t"), "-t: missing argument", 255);
    err(&sh(&m, "-L --bogus"), "--bogus: unknown option", 255);
    err(&sh(&m, "-L -nq"), "-nq: unknown option", 255);
    err(
        &sh(&m, "-L --numeric=yes"),
        "--numeric=yes: option does not take an argument",
        255,
    );
    // Correction 4: a negative number after --set is taken as an option.
    err(&sh(&m, "--set 10 20 -1"), "-1: unknown option", 255);
    // Errors of options before the popt error come first (argv order).
    err(
        &sh(&m, "-A -t 1.2.3.4:80 -s a -s b --bogus"),
        "multiple 'scheduler' options specified",
        2,
    );
}

#[test]
fn option_syntax_forms() {
    let d = director();
    let m = d.control(now());
    ok(
        &run_args(&m, &["-A", "--tcp-service=10.0.0.1:80", "--scheduler=rr"]),
        "",
    );
    ok(
        &run_args(&m, &["-a", "-t10.0.0.1:80", "-r=10.0.0.2", "-mw", "5"]),
        "",
    );
    ok(
        &run_args(&m, &["-A", "-t", "10.0.0.1:http-alt", "-s", "wrr"]),
        "",
    );
    let out = "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  10.0.0.1:80 rr\n  -> 10.0.0.2:80                  Masq    5      0          0         \n";
    ok(&sh(&m, "-Ln -t 10.0.0.1:80"), out);
    ok(&sh(&m, "-ln --tcp-service 10.0.0.1:80"), out);
    err(
        &sh(&m, "-Lnc -t 10.0.0.1:80"),
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
        2,
    );
    // Sorting is the default; --sort is accepted anywhere and does nothing.
    assert_eq!(sh(&m, "-L -n --sort").stdout, sh(&m, "-Ln").stdout);
    // No arguments at all is -L with names.
    let bare = run_args(&m, &[]);
    assert_eq!(bare.code, 0);
    assert!(bare.stdout.contains("TCP  10.0.0.1:http rr\n"));
    assert!(bare.stdout.contains("TCP  10.0.0.1:http-alt wrr\n"));
}

#[test]
fn per_option_validation() {
    let d = director();
    let m = d.control(now());
    let cases: &[(&str, &str)] = &[
        (
            "-A -t 10.0.0.1:99999",
            "illegal virtual server address[:port] specified",
        ),
        (
            "-A -t 8080",
            "illegal virtual server address[:port] specified",
        ),
        (
            "-A -t nohost:80",
            "illegal virtual server address[:port] specified",
        ),
        (
            "-A -u 10.0.0.1:http-alt",
            "illegal virtual server address[:port] specified",
        ),
        (
            "-A -t [2001:db8::9] -p",
            "illegal virtual server address[:port] specified",
        ),
        ("-A -f 0", "invalid fwmark value `0' specified"),
        (
            "-A -f 4294967296",
            "invalid fwmark value `4294967296' specified",
        ),
        (
            "-A -t 10.0.0.1:80 -p 0",
            "invalid timeout value `0' specified",
        ),
        (
            "-A -t 10.0.0.1:80 -p 2678401",
            "invalid timeout value `2678401' specified",
        ),
        (
            "-A -t 10.0.0.1:80 -p x",
            "invalid timeout value `x' specified",
        ),
        (
            "-A -t 10.0.0.1:80 -M 1.2.3.4.5",
            "illegal virtual server persistent mask specified",
        ),
        (
            "-A -t 10.0.0.1:80 -M nope",
            "illegal virtual server persistent mask specified",
        ),
        (
            "-A -t [2001:db8::1]:80 -M 129",
            "illegal ipv6 netmask specified",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.0.2:x",
            "illegal real server address[:port] specified",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1",
            "illegal weight specified",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -w 2147483648",
            "illegal weight specified",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -x -5",
            "illegal u_threshold specified",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -y x",
            "illegal l_threshold specified",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -m -g",
            "multiple 'forwarding-method' options specified",
        ),
        (
            "-a -t 10.0.0.1:80 -f 1",
            "multiple 'service-address' options specified",
        ),
        ("-L -c -c", "multiple 'connection' options specified"),
        (
            "-A -t 10.0.0.1:80 -b a -b b",
            "multiple 'sched-flags' options specified",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type foo",
            "illegal tunnel type specified",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-port 0",
            "illegal tunnel port specified",
        ),
        (
            "--start-daemon master --syncid 256",
            "illegal syncid specified",
        ),
        (
            "--start-daemon master --mcast-port 0",
            "illegal mcast-port specified",
        ),
        (
            "--start-daemon master --mcast-ttl 256",
            "illegal mcast-ttl specified",
        ),
        (
            "--start-daemon master --sync-maxlen 65508",
            "illegal sync-maxlen specified",
        ),
        (
            "--start-daemon master --mcast-group 10.0.0.1",
            "invalid IPv4 mcast-group `10.0.0.1'",
        ),
        (
            "--start-daemon master --mcast-group ff02::zz",
            "invalid IPv6 mcast-group `ff02::zz'",
        ),
        (
            "--start-daemon foo",
            "illegal start-daemon parameter specified",
        ),
        ("--stop-daemon foo", "illegal start_daemon specified"),
        ("-A -t 10.0.0.1:80 -6", "-6 used before -f\n"),
    ];
    for (line, msg) in cases {
        let o = sh(&m, line);
        assert_eq!(
            (o.stdout.as_str(), o.stderr.as_str(), o.code),
            ("", format!("{msg}\n").as_str(), 2),
            "ipvsadm {line}"
        );
    }
    // Weight: Debian accepts 0..2147483647 (g-errors: 70000 is fine).
    ok(&sh(&m, "-A -t 10.0.0.1:80"), "");
    err(
        &sh(&m, "-A -t 10.0.0.1:80 -s a -o -6"),
        "-6 used before -f\n",
        2,
    );
}

#[test]
fn set_values() {
    let d = director();
    let m = d.control(now());
    err(
        &sh(&m, "--set 10 20"),
        "--set option requires 3 timeout values",
        2,
    );
    err(
        &sh(&m, "--set 10 20 x"),
        "invalid timeout value `x' specified",
        2,
    );
    err(
        &sh(&m, "--set 10 20 2678401"),
        "invalid timeout value `2678401' specified",
        2,
    );
    err(&sh(&m, "--set 10 20 30 40"), "unexpected argument 40", 2);
    err(
        &sh(&m, "--set 10 20 30 -n"),
        "Illegal 'numeric' option with the 'set' command",
        2,
    );
    ok(&sh(&m, "--set 0 60 0"), "");
    ok(
        &sh(&m, "-L --timeout"),
        "Timeout (tcp tcpfin udp): 900 60 300\n",
    );
    // Leftovers may stand before the command too.
    ok(&sh(&m, "30 --set 0 0"), "");
    ok(
        &sh(&m, "-L --timeout"),
        "Timeout (tcp tcpfin udp): 30 60 300\n",
    );
}

#[test]
fn leftovers_and_sched_flags_order() {
    let d = director();
    let m = d.control(now());
    err(&sh(&m, "-L foo"), "unexpected argument foo", 2);
    err(&sh(&m, "-L -- -n"), "unexpected argument -n", 2);
    // Leftovers are reported before -b and before the matrix.
    err(&sh(&m, "-C -b bogus extra"), "unexpected argument extra", 2);
    err(&sh(&m, "-C -b bogus"), "invalid scheduler flag `bogus'", 2);
    err(
        &sh(&m, "-E -t 10.0.0.1:80 -b sh-port"),
        "incompatible scheduler flag `sh-port'",
        2,
    );
    err(
        &sh(&m, "-E -t 10.0.0.1:80 -b sh-port -s mh"),
        "incompatible scheduler flag `sh-port'",
        2,
    );
    err(
        &sh(&m, "-A -t 10.0.0.1:80 -b ,"),
        "invalid scheduler flag `'",
        2,
    );
    ok(&sh(&m, "-A -t 10.0.0.1:80 -b sh-port -s sh"), "");
    ok(&sh(&m, "-A -t 10.0.0.2:80 -b flag-2,flag-1"), "");
    ok(
        &sh(&m, "-S -n"),
        "-A -t 10.0.0.1:80 -s sh -b sh-port\n-A -t 10.0.0.2:80 -s wlc -b flag-1,flag-2\n",
    );
}

#[test]
fn legality_matrix_messages() {
    let d = director();
    let m = d.control(now());
    let cases: &[(&str, &str)] = &[
        ("-L -c -t 10.0.0.1:80", "The option 'service-address' conflicts with the 'connection' option in the 'list' command"),
        ("-L --timeout --daemon", "The option 'daemon' conflicts with the 'timeout' option in the 'list' command"),
        ("-L -s rr", "Illegal 'scheduler' option with the 'list' command"),
        ("-L -o", "Illegal 'ops' option with the 'list' command"),
        ("-A -s rr", "You need to supply the 'service-address' option for the 'add-service' command"),
        ("-A -t 10.0.0.1:80 -n", "Illegal 'numeric' option with the 'add-service' command"),
        ("-A -t 10.0.0.1:80 -r 10.0.0.2", "Illegal 'real-server' option with the 'add-service' command"),
        ("-E -t 10.0.0.1:80 -w 2", "Illegal 'weight' option with the 'edit-service' command"),
        ("-D -t 10.0.0.1:80 -s rr", "Illegal 'scheduler' option with the 'delete-service' command"),
        ("-a -t 10.0.0.1:80", "You need to supply the 'real-server' option for the 'add-server' command"),
        ("-e -r 10.0.0.2", "You need to supply the 'service-address' option for the 'edit-server' command"),
        ("-d -t 10.0.0.1:80 -r 10.0.0.2 -m", "Illegal 'forwarding-method' option with the 'delete-server' command"),
        ("-a -t 10.0.0.1:80 -r 10.0.0.2 --tun-info", "Illegal 'tun-info' option with the 'add-server' command"),
        ("-C -n", "Illegal 'numeric' option with the 'flush' command"),
        ("-R -n", "Illegal 'numeric' option with the 'restore' command"),
        ("-S -c", "Illegal 'connection' option with the 'save' command"),
        ("-Z -n", "Illegal 'numeric' option with the 'zero' command"),
        ("--stop-daemon master --mcast-interface eth1", "Illegal 'mcast-interface' option with the 'stop-daemon' command"),
        ("--start-daemon master --tun-info", "Illegal 'tun-info' option with the 'start-daemon' command"),
        // The list conflict rule comes after the matrix.
        ("-L -c --stats", "options conflicts in the list command"),
        ("-L --timeout --rate", "options conflicts in the list command"),
        ("-L --daemon --persistent-conn", "options conflicts in the list command"),
        ("-L --timeout --thresholds", "options conflicts in the list command"),
    ];
    for (line, msg) in cases {
        let o = sh(&m, line);
        assert_eq!(
            (o.stdout.as_str(), o.stderr.as_str(), o.code),
            ("", format!("{msg}\n").as_str(), 2),
            "ipvsadm {line}"
        );
    }
    // -c with --persistent-conn is fine (and so is --syncid with -L).
    assert_eq!(sh(&m, "-L -c --persistent-conn").code, 0);
    assert_eq!(sh(&m, "-L --syncid 3").code, 0);
}

#[test]
fn add_edit_checks_after_the_matrix() {
    let d = director();
    let m = d.control(now());
    err(
        &sh(&m, "-A -t 10.0.0.1"),
        "Zero port specified for non-persistent service",
        2,
    );
    err(
        &sh(&m, "-E -t 10.0.0.1:0 -s rr"),
        "Zero port specified for non-persistent service",
        2,
    );
    err(
        &sh(&m, "-A -t 10.0.0.1:80 -o"),
        "One-Packet Scheduling is only for UDP virtual services",
        2,
    );
    ok(&sh(&m, "-A -t 10.0.0.1 -p 60"), "");
    ok(&sh(&m, "-A -u 10.0.0.1:53 -o"), "");
    ok(&sh(&m, "-A -f 7 -o"), "");
    err(
        &sh(&m, "-a -t 10.0.0.1:80 -r [2001:db8::1]:80 -m"),
        "Different address family is allowed only for tunneling servers",
        2,
    );
    err(
        &sh(&m, "-a -f 7 -r [2001:db8::1]:80 -m"),
        "Different address family is allowed only for tunneling servers",
        2,
    );
    err(
        &sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.2 -m --tun-type ipip"),
        "Tunnel options conflict with forward method",
        2,
    );
    err(
        &sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.2 --tun-nocsum"),
        "Tunnel options conflict with forward method",
        2,
    );
    err(
        &sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue"),
        "You need to supply the 'tun-port' option for the 'gue' tunnel type",
        2,
    );
    err(
        &sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-port 6080"),
        "Illegal 'tun-port' option with the 'ipip' tunnel type",
        2,
    );
    err(
        &sh(
            &m,
            "-e -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gre --tun-remcsum",
        ),
        "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
        2,
    );
    err(
        &sh(
            &m,
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 1 --tun-csum --tun-remcsum",
        ),
        "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type",
        2,
    );
}

#[test]
fn direct_routing_and_ipip_are_accepted_and_other_tunnels_refused_after_all_validation() {
    let d = director();
    let m = d.control(now());
    ok(&sh(&m, "-A -t 10.0.0.1:80"), "");
    // ipvsadm's default forwarding method is -g, direct routing: masq forwards it.
    ok(&sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.2"), "");
    // Direct routing cannot map ports: ipvsadm silently stores the service's port.
    ok(&sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.3:8080 -g -w 3"), "");
    // -i's default type, IPIP, is forwarded; GUE and GRE are not.
    ok(&sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.5 -i"), "");
    err(
        &sh(
            &m,
            "-a -t 10.0.0.1:80 -r 10.0.0.4 -i --tun-type gue --tun-port 6080",
        ),
        NO_TUNNEL_TYPE,
        255,
    );
    err(
        &sh(&m, "-e -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gre"),
        NO_TUNNEL_TYPE,
        255,
    );
    // The refusal comes before the director is asked, even for a missing service.
    err(
        &sh(&m, "-a -t 10.0.0.9:80 -r 10.0.0.2 -i --tun-type gre"),
        NO_TUNNEL_TYPE,
        255,
    );
    ok(&sh(&m, "-d -t 10.0.0.1:80 -r 10.0.0.5"), "");
    // ... and after ipvsadm's validation.
    err(
        &sh(
            &m,
            "-a -t 10.0.0.1:80 -r 10.0.0.4 -i --tun-type gre -w 99999999999",
        ),
        "illegal weight specified",
        2,
    );
    // -e without a method is -g, as in ipvsadm.
    ok(&sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.4 -m"), "");
    ok(&sh(&m, "-e -t 10.0.0.1:80 -r 10.0.0.4 -w 2"), "");
    ok(
        &sh(&m, "-S -n"),
        "-A -t 10.0.0.1:80 -s wlc\n\
         -a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1\n\
         -a -t 10.0.0.1:80 -r 10.0.0.3:80 -g -w 3\n\
         -a -t 10.0.0.1:80 -r 10.0.0.4:80 -g -w 2\n",
    );
    ok(
        &sh(&m, "-L -n"),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  10.0.0.1:80 wlc\n\
         \x20 -> 10.0.0.2:80                  Route   1      0          0         \n\
         \x20 -> 10.0.0.3:80                  Route   3      0          0         \n\
         \x20 -> 10.0.0.4:80                  Route   2      0          0         \n",
    );
}

/// Each point of "ipvsadm, the rest" in issue 15 where masq differed from ipvsadm 1.31 on
/// a real kernel.
#[test]
fn ipvsadm_the_rest() {
    let d = director();
    let m = d.control(now());
    ok(&sh(&m, "-A -t 10.0.0.1:80 -s rr"), "");
    // No arguments lists, with names, as ipvsadm does.
    let bare = run_full(&m, "masqadm", &[], None);
    assert_eq!((bare.stderr.as_str(), bare.code), ("", 0));
    assert!(
        bare.stdout.contains("TCP  10.0.0.1:http rr\n"),
        "{}",
        bare.stdout
    );
    // The kernel looks for the service before it looks for the scheduler.
    err(
        &sh(&m, "-A -t 10.0.0.1:80 -s bogus"),
        "Service already exists",
        255,
    );
    // An unknown persistence engine is the kernel's ENOENT; its one engine, sip, is taken.
    err(
        &sh(&m, "-A -u 10.0.0.1:5060 -p --pe bogus"),
        "Scheduler or persistence engine not found",
        255,
    );
    ok(&sh(&m, "-A -u 10.0.0.1:5060 -p --pe sip"), "");
    // A link-local real server is not unicast enough for the kernel: EINVAL.
    ok(&sh(&m, "-A -t [2001:db8::1]:80"), "");
    err(
        &sh(&m, "-a -t [2001:db8::1]:80 -r [fe80::1]:80 -m"),
        "Invalid operation.  Possibly wrong module version, address not unicast, ...",
        255,
    );
    ok(&sh(&m, "-a -t [2001:db8::1]:80 -r [2001:db8::7]:80 -m"), "");
}

#[test]
fn director_errors_per_command() {
    let d = director();
    let m = d.control(now());
    ok(&sh(&m, "-A -t 10.0.0.1:80 -s rr"), "");
    err(
        &sh(&m, "-A -t 10.0.0.1:80 -s rr"),
        "Service already exists",
        255,
    );
    err(
        &sh(&m, "-A -t 10.0.0.2:80 -s nosuch"),
        "Scheduler or persistence engine not found",
        255,
    );
    err(
        &sh(&m, "-A -t 10.0.0.2:80 -p --pe nope"),
        "Scheduler or persistence engine not found",
        255,
    );
    err(
        &sh(&m, "-E -t 10.0.0.1:80 -s RR"),
        "Scheduler or persistence engine not found",
        255,
    );
    err(
        &sh(&m, "-E -t 10.0.0.1:80 -p --pe nope"),
        "Scheduler or persistence engine not found",
        255,
    );
    err(&sh(&m, "-E -t 10.0.0.9:80"), "No such service", 255);
    err(&sh(&m, "-D -t 10.0.0.9:80"), "No such service", 255);
    err(&sh(&m, "-Z -t 10.0.0.9:80"), "No such service", 255);
    err(&sh(&m, "-L -t 10.0.0.9:80"), "No such service", 1);
    err(
        &sh(&m, "-a -t 10.0.0.9:80 -r 10.0.0.2 -m"),
        "Service not defined",
        255,
    );
    err(
        &sh(&m, "-d -t 10.0.0.9:80 -r 10.0.0.2"),
        "Service not defined",
        255,
    );
    err(
        &sh(&m, "-e -t 10.0.0.1:80 -r 10.0.0.2 -m"),
        "No such destination",
        255,
    );
    err(
        &sh(&m, "-d -t 10.0.0.1:80 -r 10.0.0.2"),
        "No such destination",
        255,
    );
    err(
        &sh(&m, "-a -t 10.0.0.1:80 -r 224.0.0.1 -m"),
        "Invalid operation.  Possibly wrong module version, address not unicast, ...",
        255,
    );
    err(
        &sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.2 -m -y 10"),
        "Numerical result out of range",
        255,
    );
    ok(&sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.2 -m"), "");
    err(
        &sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.2 -m"),
        "Destination already exists",
        255,
    );
    // -d/-e match address and port; -r without a port means the service port.
    ok(&sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.3:8080 -m"), "");
    err(
        &sh(&m, "-d -t 10.0.0.1:80 -r 10.0.0.3"),
        "No such destination",
        255,
    );
    ok(&sh(&m, "-d -t 10.0.0.1:80 -r 10.0.0.3:8080"), "");
    ok(&sh(&m, "-Z"), "");
    ok(&sh(&m, "-Z -t 10.0.0.1:80"), "");
    ok(&sh(&m, "-C"), "");
    err(&sh(&m, "-D -t 10.0.0.1:80"), "No such service", 255);
}

#[test]
fn sync_daemons_as_the_kernel_lists_them() {
    let d = director();
    let m = d.control(now());
    ok(&sh(&m, "-L --daemon"), "");
    err(&sh(&m, "--stop-daemon master"), "No daemon is running", 255);
    // kernel-observed: `--start-daemon master --mcast-interface br0 --syncid 7`.
    ok(
        &sh(&m, "--start-daemon master --mcast-interface br0 --syncid 7"),
        "",
    );
    ok(
        &sh(&m, "-L --daemon"),
        "master sync daemon (mcast=br0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
    );
    err(
        &sh(&m, "--start-daemon master --mcast-interface br0"),
        "Daemon has already run",
        255,
    );
    ok(
        &sh(
            &m,
            "--start-daemon backup --mcast-interface eth1 --syncid 9 --mcast-group 239.1.2.3 --mcast-port 9000 --mcast-ttl 4 --sync-maxlen 1200",
        ),
        "",
    );
    ok(
        &sh(&m, "-L --daemon"),
        "master sync daemon (mcast=br0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
         backup sync daemon (mcast=eth1, syncid=9, maxlen=1200, group=239.1.2.3, port=9000, ttl=4)\n",
    );
    ok(&sh(&m, "--stop-daemon master"), "");
    ok(
        &sh(&m, "-L --daemon"),
        "backup sync daemon (mcast=eth1, syncid=9, maxlen=1200, group=239.1.2.3, port=9000, ttl=4)\n",
    );
    ok(&sh(&m, "--stop-daemon backup"), "");
    ok(&sh(&m, "-L --daemon"), "");
}

#[test]
fn real_server_port_rules() {
    let d = director();
    let m = d.control(now());
    ok(&sh(&m, "-A -t 10.0.0.1:443"), "");
    ok(&sh(&m, "-A -f 5"), "");
    // -r without a port takes the service port; the port is whatever the service had when
    // -r was read (ipvsadm parses into a copy of the service so far).
    ok(&sh(&m, "-a -t 10.0.0.1:443 -r 10.0.0.2 -m"), "");
    ok(&sh(&m, "-a -r 10.0.0.3 -t 10.0.0.1:443 -m"), "");
    // Port names are looked up for the service's protocol, so -r before -t knows none.
    err(
        &sh(&m, "-a -r 10.0.0.4:http -t 10.0.0.1:443 -m"),
        "illegal real server address[:port] specified",
        2,
    );
    ok(&sh(&m, "-a -t 10.0.0.1:443 -r 10.0.0.4:http -m"), "");
    ok(&sh(&m, "-a -f 5 -r 10.0.0.5 -m"), "");
    ok(
        &sh(&m, "-S -n"),
        "-A -t 10.0.0.1:443 -s wlc\n\
         -a -t 10.0.0.1:443 -r 10.0.0.2:443 -m -w 1\n\
         -a -t 10.0.0.1:443 -r 10.0.0.3:0 -m -w 1\n\
         -a -t 10.0.0.1:443 -r 10.0.0.4:80 -m -w 1\n\
         -A -f 5 -s wlc\n\
         -a -f 5 -r 10.0.0.5:0 -m -w 1\n",
    );
}
