//! Transcripts of ipvsadm against the kernel's IPVS, replayed byte for byte: `data/` here,
//! and the error transcript in the repository's `tests/data/`, which the end-to-end test
//! `tests/control_plane.rs` replays against a running masqd as well.

use std::net::IpAddr;

use masq_core::control::{ConnView, DestKey, Protocol, RateView, ServiceKey, StatsView};

use crate::{blocks, director, now, replay, run_full, Counters, WithTraffic};

const G_ERRORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/kernel-g-errors.txt"
));
const E1: &str = include_str!("data/e1-listings.txt");
const A: &str = include_str!("data/a.txt");

fn vip() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: "192.168.0.10".parse().unwrap(),
        port: 80,
    }
}

fn rip(last: u8) -> DestKey {
    DestKey {
        addr: IpAddr::from([192, 168, 100, last]),
        port: 80,
    }
}

#[test]
fn g_errors_sequence_byte_for_byte() {
    let d = director();
    let ctl = d.control(now());
    let all = blocks(G_ERRORS);
    assert!(all.len() > 25, "transcript parsed");
    // The services 8031..8063 come from earlier transcripts: restore them from the saved
    // rules the transcript itself shows (everything but the 9000 service this test builds).
    let save = all.iter().find(|b| b.args == "-S -n").expect("-S -n block");
    let earlier: String = save
        .output
        .lines()
        .filter(|l| !l.contains(":9000"))
        .map(|l| format!("{l}\n"))
        .collect();
    let o = run_full(&ctl, "ipvsadm", &["-R"], Some(&earlier));
    assert_eq!((o.stdout.as_str(), o.stderr.as_str(), o.code), ("", "", 0));
    for b in &all {
        replay(&ctl, b);
    }
}

/// The lab of a.txt after its rr/wrr runs: VIP:80 wrr, .7 weight 3 and .9 weight 1, with
/// the counters and rates its traffic left.
fn e1_lab(ctl: &WithTraffic) {
    for line in [
        "-A -t 192.168.0.10:80 -s rr",
        "-a -t 192.168.0.10:80 -r 192.168.100.7 -m",
        "-a -t 192.168.0.10:80 -r 192.168.100.9 -m",
        "-E -t 192.168.0.10:80 -s wrr",
        "-e -t 192.168.0.10:80 -r 192.168.100.7 -m -w 3",
    ] {
        crate::ok(&crate::sh(ctl, line), "");
    }
    let st = |conns, inpkts, outpkts, inbytes, outbytes| StatsView {
        conns,
        inpkts,
        outpkts,
        inbytes,
        outbytes,
    };
    let rt = |cps, inpps, outpps, inbps, outbps| RateView {
        cps,
        inpps,
        outpps,
        inbps,
        outbps,
    };
    ctl.set_service(
        vip(),
        Counters {
            stats: st(13, 64, 50, 3432, 3757),
            rate: rt(1, 7, 6, 395, 434),
            ..Counters::default()
        },
    );
    ctl.set_dest(
        vip(),
        rip(7),
        Counters {
            stats: st(8, 39, 30, 2092, 2272),
            rate: rt(1, 5, 4, 245, 267),
            active_conns: 0,
            inact_conns: 9,
        },
    );
    ctl.set_dest(
        vip(),
        rip(9),
        Counters {
            stats: st(5, 25, 20, 1340, 1485),
            rate: rt(1, 3, 2, 151, 167),
            active_conns: 0,
            inact_conns: 5,
        },
    );
}

/// TIME_WAIT entries from client 192.168.0.101: (client port, real server, seconds left).
fn time_wait(rows: &[(u16, u8, u64)]) -> Vec<ConnView> {
    rows.iter()
        .map(|&(cport, last, secs)| ConnView {
            protocol: "TCP",
            client: (IpAddr::from([192, 168, 0, 101]), cport),
            virtual_: (IpAddr::from([192, 168, 0, 10]), 80),
            dest: (IpAddr::from([192, 168, 100, last]), 80),
            state: "TIME_WAIT",
            expires_secs: secs,
            template: false,
        })
        .collect()
}

/// The connection table at the moment of each `-c` command of e1 (the expiry times moved
/// between the commands).
fn e1_connections(args: &str) -> Vec<ConnView> {
    let order = [
        20010, 20002, 20009, 20007, 20001, 20004, 20011, 20014, 20013, 20008, 20012, 20005, 20003,
        20006,
    ];
    let rips = [7, 7, 7, 9, 9, 7, 9, 7, 7, 7, 7, 9, 9, 7];
    let secs: [u64; 14] = match args {
        "-L -n -c" => [
            118, 116, 118, 117, 116, 116, 118, 119, 118, 117, 118, 117, 116, 117,
        ],
        "-L -c" => [
            118, 116, 117, 117, 116, 116, 118, 119, 118, 117, 118, 117, 116, 117,
        ],
        _ => [
            118, 116, 117, 117, 116, 116, 118, 118, 118, 117, 118, 116, 116, 117,
        ],
    };
    let rows: Vec<(u16, u8, u64)> = (0..14).map(|i| (order[i], rips[i], secs[i])).collect();
    time_wait(&rows)
}

#[test]
fn e1_listings_byte_for_byte() {
    let d = director();
    let ctl = WithTraffic::new(d.control(now()));
    e1_lab(&ctl);
    let all = blocks(E1);
    let commands: Vec<&str> = all.iter().map(|b| b.args.as_str()).collect();
    assert_eq!(
        commands,
        vec![
            "-L -n",
            "-L",
            "-S -n",
            "-S",
            "-L -n --stats",
            "-L -n --stats --exact",
            "-L -n --rate",
            "-L -n --thresholds",
            "-L -n --persistent-conn",
            "-L -n -c",
            "-L -c",
            "-L -n -c --persistent-conn",
            "-L --timeout",
            "-L -n -t 192.168.0.10:80",
            "-L --daemon",
        ]
    );
    for b in &all {
        ctl.set_connections(e1_connections(&b.args));
        replay(&ctl, b);
    }
}

#[test]
fn a_rr_then_wrr_listings() {
    let d = director();
    let ctl = WithTraffic::new(d.control(now()));
    let all = blocks(A);
    assert_eq!(all.len(), 7);
    for b in &all {
        if b.args == "-L -n" {
            // What the connections of the run left behind (all closed: InActConn).
            let (seven, nine) = if b.output.contains("wrr") {
                (9, 5)
            } else {
                (3, 3)
            };
            for (last, inact_conns) in [(7, seven), (9, nine)] {
                let closed = Counters {
                    inact_conns,
                    ..Counters::default()
                };
                ctl.set_dest(vip(), rip(last), closed);
            }
        }
        replay(&ctl, b);
    }
}
