//! Listing and save formats as ipvsadm 1.31 prints them over netlink: the service lines and
//! the `-S` block observed from it, sorting, the number columns, and what the netlink path
//! changes (32-bit counters, negative fwmarks). Expected texts were written from ipvsadm.c's
//! printf formats.

use std::sync::Arc;

use masq_core::control::{
    ConnView, Control, DestKey, DestParams, FwdMethod, Protocol, RateView, ServiceKey, StatsView,
    TunnelKind,
};
use masq_core::Director;

use crate::{director, err, now, ok, run_full, sh, Counters, WithTraffic};

const REF_L_N: &str = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  10.0.0.1:443 wlc persistent 360\n  -> 172.16.0.1:8443              Masq    2      0          0         \n  -> 172.16.0.2:443               Route   1      0          0         \n  -> 172.16.0.3:443               Tunnel  1      0          0         \nTCP  10.0.0.2:443 wrr persistent 600 mask 255.255.255.0\nTCP  10.0.0.4:80 sh (sh-fallback,sh-port)\nTCP  10.0.0.6:80 rr (flag-1,flag-3)\nTCP  10.0.0.8:0 rr persistent 60\nUDP  10.0.0.3:53 rr ops\nFWM  7 lc\n  -> 172.16.0.4:0                 Masq    0      0          0         \n  -> 172.16.0.5:8080              Masq    1      0          0         \n";
const REF_L: &str = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  10.0.0.1:https wlc persistent 360\n  -> 172.16.0.1:8443              Masq    2      0          0         \n  -> 172.16.0.2:https             Route   1      0          0         \n  -> 172.16.0.3:https             Tunnel  1      0          0         \nTCP  10.0.0.2:https wrr persistent 600 mask 255.255.255.0\nTCP  10.0.0.4:http sh (sh-fallback,sh-port)\nTCP  10.0.0.6:http rr (flag-1,flag-3)\nTCP  10.0.0.8:0 rr persistent 60\nUDP  10.0.0.3:domain rr ops\nFWM  7 lc\n  -> 172.16.0.4:0                 Masq    0      0          0         \n  -> 172.16.0.5:8080              Masq    1      0          0         \n";
const REF_TUN: &str = "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\nTCP  10.0.0.1:443 wlc persistent 360\n  -> 172.16.0.1:8443              Masq    n/a           2      0          0         \n  -> 172.16.0.2:443               Route   n/a           1      0          0         \n  -> 172.16.0.3:443               Tunnel  ipip          1      0          0         \n";
const QUIRK: &str = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  192.168.0.1:80 wlc\nTCP  200.0.0.1:80 wlc\nTCP  1.0.0.1:80 wlc\n  -> 200.1.1.1:80                 Masq    1      0          0         \n  -> 10.1.1.1:80                  Masq    1      0          0         \nTCP  10.0.0.1:80 wlc\n";
const STATS: &str = "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\nTCP  10.0.0.1:80                         3    5000M        7    5000M        9\n  -> 10.0.0.2:80                         3  705032K        7    5000M        9\n";
const STATS_EXACT: &str = "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\nTCP  10.0.0.1:80                         3 5000000000        7 5000000000        9\n  -> 10.0.0.2:80                         3 705032704        7 5000000000        9\n";
const RATE: &str = "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\nTCP  10.0.0.1:80                         1  705032K        2  705032K  123456K\n  -> 10.0.0.2:80                         1 705032704        2  705032K  123456K\n";
const W_MAX_LINE: &str =
    "  -> 10.0.0.2:80                  Masq    2147483647 0          0         \n";
const TH_LINE: &str =
    "  -> 10.0.0.2:80                  5          1          0          0         \n";
const TH_LINE_CLEARED: &str =
    "  -> 10.0.0.2:80                  0          0          0          0         \n";
const LONG_SVC: &str = "TCP  a-very-long-host-name.exampl wlc\n";
const LONG_DEST: &str = "  -> a-very-long-host-name.exampl Masq    1      0          0         \n";
const V6: &str = "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  [2001:db8::1]:80 rr persistent 360 mask 64\n  -> [2001:db8::9]:8080           Masq    1      0          0         \n";

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn dest(addr: &str, port: u16) -> DestKey {
    DestKey {
        addr: addr.parse().unwrap(),
        port,
    }
}

/// Services of every kind ipvsadm lists, with masquerading, routed and tunnelled real
/// servers, as observed from ipvsadm 1.31. The -g and -i real servers cannot be
/// added through masq's language (NAT only), so they go to the director directly.
fn every_kind_of_service() -> Arc<Director> {
    let d = director();
    let m = d.control(now());
    let rules = "\
-A -t 10.0.0.1:443 -s wlc -p 360
-a -t 10.0.0.1:443 -r 172.16.0.1:8443 -m -w 2
-A -t 10.0.0.2:443 -s wrr -p 600 -M 255.255.255.0
-A -t 10.0.0.4:80 -s sh -b sh-fallback,sh-port
-A -t 10.0.0.6:80 -s rr -b flag-1,flag-3
-A -t 10.0.0.8:0 -s rr -p 60
-A -u 10.0.0.3:53 -s rr -o
-A -f 7 -s lc
-a -f 7 -r 172.16.0.4:0 -m -w 0
-a -f 7 -r 172.16.0.5:8080 -m -w 1
";
    ok(&run_full(&m, "ipvsadm", &["-R"], Some(rules)), "");
    let svc = tcp("10.0.0.1", 443);
    let route = DestParams {
        fwd: FwdMethod::Route,
        ..DestParams::default()
    };
    let tunnel = DestParams {
        fwd: FwdMethod::Tunnel,
        tunnel: TunnelKind::Ipip,
        ..DestParams::default()
    };
    m.add_dest(svc, dest("172.16.0.2", 443), route).unwrap();
    m.add_dest(svc, dest("172.16.0.3", 443), tunnel).unwrap();
    d
}

#[test]
fn save_is_ipvsadms_block() {
    let d = every_kind_of_service();
    let m = d.control(now());
    ok(
        &sh(&m, "-S -n"),
        "-A -t 10.0.0.1:443 -s wlc -p 360
-a -t 10.0.0.1:443 -r 172.16.0.1:8443 -m -w 2
-a -t 10.0.0.1:443 -r 172.16.0.2:443 -g -w 1
-a -t 10.0.0.1:443 -r 172.16.0.3:443 -i -w 1 --tun-type ipip
-A -t 10.0.0.2:443 -s wrr -p 600 -M 255.255.255.0
-A -t 10.0.0.4:80 -s sh -b sh-fallback,sh-port
-A -t 10.0.0.6:80 -s rr -b flag-1,flag-3
-A -t 10.0.0.8:0 -s rr -p 60
-A -u 10.0.0.3:53 -s rr -o
-A -f 7 -s lc
-a -f 7 -r 172.16.0.4:0 -m -w 0
-a -f 7 -r 172.16.0.5:8080 -m -w 1
",
    );
    // With names; fwmark real servers keep numeric ports.
    ok(
        &sh(&m, "-S"),
        "-A -t 10.0.0.1:https -s wlc -p 360
-a -t 10.0.0.1:https -r 172.16.0.1:8443 -m -w 2
-a -t 10.0.0.1:https -r 172.16.0.2:https -g -w 1
-a -t 10.0.0.1:https -r 172.16.0.3:https -i -w 1 --tun-type ipip
-A -t 10.0.0.2:https -s wrr -p 600 -M 255.255.255.0
-A -t 10.0.0.4:http -s sh -b sh-fallback,sh-port
-A -t 10.0.0.6:http -s rr -b flag-1,flag-3
-A -t 10.0.0.8:0 -s rr -p 60
-A -u 10.0.0.3:domain -s rr -o
-A -f 7 -s lc
-a -f 7 -r 172.16.0.4:0 -m -w 0
-a -f 7 -r 172.16.0.5:8080 -m -w 1
",
    );
}

#[test]
fn list_shows_ipvsadms_service_lines() {
    let d = every_kind_of_service();
    let m = d.control(now());
    ok(&sh(&m, "-L -n"), REF_L_N);
    ok(&sh(&m, "-L"), REF_L);
    ok(&sh(&m, "-L -n --tun-info -t 10.0.0.1:443"), REF_TUN);
}

#[test]
fn save_round_trips_through_restore() {
    let d = every_kind_of_service();
    let m = d.control(now());
    let saved = sh(&m, "-S -n").stdout;
    let d = director();
    let copy = d.control(now());
    // IPIP tunnel lines included: masq forwards every method these rules use.
    assert!(saved.contains(" -i "), "the saved rules have tunnel lines");
    let o = run_full(&copy, "ipvsadm", &["-R"], Some(&saved));
    assert_eq!((o.code, o.stderr.as_str()), (0, ""));
    ok(&sh(&copy, "-S -n"), &saved);
}

#[test]
fn sorting_wraps_around_like_libipvs() {
    let d = director();
    let m = d.control(now());
    for vip in ["1.0.0.1", "10.0.0.1", "200.0.0.1", "192.168.0.1"] {
        ok(&sh(&m, &format!("-A -t {vip}:80")), "");
    }
    ok(&sh(&m, "-a -t 1.0.0.1:80 -r 10.1.1.1 -m"), "");
    ok(&sh(&m, "-a -t 1.0.0.1:80 -r 200.1.1.1 -m"), "");
    ok(&sh(&m, "-L -n"), QUIRK);
}

#[test]
fn nosort_keeps_the_director_order() {
    let d = director();
    let m = d.control(now());
    ok(&sh(&m, "-A -t 10.0.0.2:80 -s rr"), "");
    ok(&sh(&m, "-A -t 10.0.0.1:80 -s rr"), "");
    ok(&sh(&m, "-a -t 10.0.0.2:80 -r 10.0.1.7 -m"), "");
    ok(&sh(&m, "-a -t 10.0.0.2:80 -r 10.0.1.9 -m"), "");
    let line = |a: &str| format!("  -> {a:<28} Masq    1      0          0         \n");
    let head = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
    ok(
        &sh(&m, "-L -n --nosort"),
        &format!(
            "{head}TCP  10.0.0.2:80 rr\n{}{}TCP  10.0.0.1:80 rr\n",
            line("10.0.1.9:80"),
            line("10.0.1.7:80")
        ),
    );
    ok(
        &sh(&m, "-L -n"),
        &format!(
            "{head}TCP  10.0.0.1:80 rr\nTCP  10.0.0.2:80 rr\n{}{}",
            line("10.0.1.7:80"),
            line("10.0.1.9:80")
        ),
    );
}

#[test]
fn counters_are_cut_like_the_netlink_path() {
    let d = director();
    let m = WithTraffic::new(d.control(now()));
    ok(&sh(&m, "-A -t 10.0.0.1:80"), "");
    ok(&sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.2 -m"), "");
    let big = 5_000_000_000;
    let stats = StatsView {
        conns: 3,
        inpkts: big,
        outpkts: 7,
        inbytes: big,
        outbytes: 9,
    };
    let rate = RateView {
        cps: 1,
        inpps: big,
        outpps: 2,
        inbps: big,
        outbps: 123_456_789,
    };
    let counters = Counters {
        stats,
        rate,
        ..Counters::default()
    };
    m.set_service(tcp("10.0.0.1", 80), counters);
    m.set_dest(tcp("10.0.0.1", 80), dest("10.0.0.2", 80), counters);
    ok(&sh(&m, "-L -n --stats -t 10.0.0.1:80"), STATS);
    ok(&sh(&m, "-L -n --stats -X -t 10.0.0.1:80"), STATS_EXACT);
    ok(
        &sh(&m, "-L -n --rate --exact -t 10.0.0.1:80"),
        &RATE
            .replace("  705032K", " 705032704")
            .replace("  123456K", " 123456789"),
    );
    ok(&sh(&m, "-L -n --rate -t 10.0.0.1:80"), RATE);
    // --stats wins over --rate, --thresholds and the rest.
    ok(
        &sh(&m, "-L -n --rate --stats --thresholds -t 10.0.0.1:80"),
        STATS,
    );
    ok(&sh(&m, "-Z"), "");
    assert!(sh(&m, "-L -n --stats").stdout.contains(
        "TCP  10.0.0.1:80                         0        0        0        0        0\n"
    ));
}

#[test]
fn fwmarks_above_2_31_are_negative_and_first() {
    let d = director();
    let m = d.control(now());
    ok(&sh(&m, "-A -t 10.0.0.1:80"), "");
    ok(&sh(&m, "-A -f 4294967295 -s rr"), "");
    ok(&sh(&m, "-A -f 2 -6 -s rr"), "");
    ok(
        &sh(&m, "-S -n"),
        "-A -f -1 -s rr\n-A -t 10.0.0.1:80 -s wlc\n-A -f 2 -6 -s rr\n",
    );
    let l = sh(&m, "-L -n").stdout;
    assert!(
        l.ends_with("FWM  -1 rr\nTCP  10.0.0.1:80 wlc\nFWM  2 IPv6 rr\n"),
        "{l}"
    );
}

#[test]
fn wide_weights_push_the_columns() {
    let d = director();
    let m = d.control(now());
    ok(&sh(&m, "-A -t 10.0.0.1:80"), "");
    ok(
        &sh(&m, "-a -t 10.0.0.1:80 -r 10.0.0.2 -m -w 2147483647"),
        "",
    );
    assert!(sh(&m, "-L -n").stdout.ends_with(W_MAX_LINE));
}

#[test]
fn full_replacement_semantics() {
    let d = director();
    let m = d.control(now());
    ok(
        &sh(&m, "-A -t 10.0.0.2:443 -s wrr -p 600 -M 255.255.255.0"),
        "",
    );
    // -E resets what it is not given.
    ok(&sh(&m, "-E -t 10.0.0.2:443 -p 600"), "");
    ok(&sh(&m, "-S -n"), "-A -t 10.0.0.2:443 -s wlc -p 600\n");
    // -e without -x/-y clears the thresholds.
    ok(
        &sh(&m, "-a -t 10.0.0.2:443 -r 10.0.0.2:80 -m -x 5 -y 1"),
        "",
    );
    assert!(sh(&m, "-L -n --thresholds").stdout.ends_with(TH_LINE));
    ok(&sh(&m, "-e -t 10.0.0.2:443 -r 10.0.0.2:80 -m"), "");
    assert!(sh(&m, "-L -n --thresholds")
        .stdout
        .ends_with(TH_LINE_CLEARED));
    // -M without -p is accepted and shown nowhere.
    ok(&sh(&m, "-A -t 10.0.0.5:80 -M 255.255.0.0"), "");
    // -s none.
    ok(&sh(&m, "-A -t 10.0.0.6:80 -s none"), "");
    // -E without --pe drops the engine.
    ok(&sh(&m, "-A -u 10.0.0.7:5060 -p --pe sip"), "");
    let l = sh(&m, "-L -n").stdout;
    assert!(l.contains("\nTCP  10.0.0.5:80 wlc\n"), "{l}");
    assert!(l.contains("\nTCP  10.0.0.6:80 none\n"), "{l}");
    assert!(
        l.contains("\nUDP  10.0.0.7:5060 wlc persistent 360 pe sip\n"),
        "{l}"
    );
    assert!(sh(&m, "-S -n")
        .stdout
        .contains("-A -u 10.0.0.7:5060 -s wlc -p 360 --pe sip\n"));
    ok(&sh(&m, "-E -u 10.0.0.7:5060 -p 30"), "");
    assert!(sh(&m, "-L -n")
        .stdout
        .contains("\nUDP  10.0.0.7:5060 wlc persistent 30\n"));
}

#[test]
fn names_and_truncation() {
    let d = director();
    let m = d.control(now());
    ok(&sh(&m, "-A -t 10.9.9.9:80"), "");
    ok(&sh(&m, "-a -t 10.9.9.9:80 -r 10.9.9.9 -m"), "");
    ok(&sh(&m, "-A -t localhost:www"), "");
    let l = sh(&m, "-L").stdout;
    assert!(l.contains(&format!("\n{LONG_SVC}{LONG_DEST}")), "{l}");
    assert!(l.contains("\nTCP  localhost:http wlc\n"), "{l}");
    // -S is not cut.
    assert!(sh(&m, "-S").stdout.contains(
        "-a -t a-very-long-host-name.example.org:http -r a-very-long-host-name.example.org:http -m -w 1\n"
    ));
    assert!(sh(&m, "-L -n").stdout.contains("\nTCP  127.0.0.1:80 wlc\n"));
}

#[test]
fn ipv6_services() {
    let d = director();
    let m = d.control(now());
    ok(&sh(&m, "-A -t [2001:db8::1]:80 -s rr -p -M 64"), "");
    ok(
        &sh(&m, "-a -t [2001:db8::1]:80 -r [2001:db8::9]:8080 -m"),
        "",
    );
    ok(&sh(&m, "-L -n -t [2001:db8::1]:80"), V6);
    ok(
        &sh(&m, "-S -n"),
        "-A -t [2001:db8::1]:80 -s rr -p 360 -M 64\n-a -t [2001:db8::1]:80 -r [2001:db8::9]:8080 -m -w 1\n",
    );
    // A bare IPv6 address (no brackets, no port) parses; a -M before the address is read
    // as an IPv4 mask and then replaced by the service's /128.
    ok(&sh(&m, "-A -M 255.255.255.0 -t 2001:db8::2 -p"), "");
    assert!(sh(&m, "-S -n")
        .stdout
        .contains("-A -t [2001:db8::2]:0 -s wlc -p 360\n"));
}

#[test]
fn connection_listing_as_ipvsadm_prints_it() {
    let d = director();
    let m = WithTraffic::new(d.control(now()));
    let a = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let conn =
        |protocol, client: (&str, u16), virt: (&str, u16), d: (&str, u16), state, secs| ConnView {
            protocol,
            client: (a(client.0), client.1),
            virtual_: (a(virt.0), virt.1),
            dest: (a(d.0), d.1),
            state,
            expires_secs: secs,
            template: false,
        };
    m.set_connections(vec![
        conn(
            "TCP",
            ("192.168.0.50", 54321),
            ("192.168.0.10", 80),
            ("192.168.100.7", 80),
            "ESTABLISHED",
            899,
        ),
        conn(
            "TCP",
            ("192.168.0.51", 40000),
            ("192.168.0.10", 80),
            ("192.168.100.9", 80),
            "FIN_WAIT",
            61,
        ),
        conn(
            "UDP",
            ("192.168.0.52", 5353),
            ("192.168.0.10", 53),
            ("192.168.100.9", 53),
            "UDP",
            299,
        ),
        ConnView {
            template: true,
            ..conn(
                "TCP",
                ("192.168.0.50", 0),
                ("192.168.0.10", 443),
                ("192.168.100.7", 443),
                "NONE",
                359,
            )
        },
    ]);
    let head = "IPVS connection entries\npro expire state       source             virtual            destination\n";
    ok(
        &sh(&m, "-L -n -c"),
        &format!(
            "{head}\
TCP 14:59  ESTABLISHED 192.168.0.50:54321 192.168.0.10:80    192.168.100.7:80
TCP 01:01  FIN_WAIT    192.168.0.51:40000 192.168.0.10:80    192.168.100.9:80
UDP 04:59  UDP         192.168.0.52:5353  192.168.0.10:53    192.168.100.9:53
TCP 05:59  NONE        192.168.0.50:0     192.168.0.10:443   192.168.100.7:443
"
        ),
    );
    let named = sh(&m, "-L -c").stdout;
    assert!(
        named.contains(" 192.168.0.10:http  192.168.100.7:http\n"),
        "{named}"
    );
    assert!(
        named.contains(
            "UDP 04:59  UDP         192.168.0.52:mdns  192.168.0.10:domain 192.168.100.9:domain\n"
        ),
        "{named}"
    );
    assert!(
        named.contains(" 192.168.0.50:0     192.168.0.10:https 192.168.100.7:https\n"),
        "{named}"
    );
}

#[test]
fn list_one_service_has_no_banner_and_fails_with_1() {
    let d = every_kind_of_service();
    let m = d.control(now());
    ok(
        &sh(&m, "-L -n -f 7"),
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nFWM  7 lc\n  -> 172.16.0.4:0                 Masq    0      0          0         \n  -> 172.16.0.5:8080              Masq    1      0          0         \n",
    );
    err(&sh(&m, "-L -n -f 8"), "No such service", 1);
    err(&sh(&m, "-L -n -u 10.0.0.1:443"), "No such service", 1);
}
