//! The seed lab through the real director: who answers, in which order, and what the
//! director counts.

use std::net::{IpAddr, SocketAddrV4};

use masq_core::control::{
    Control, DestKey, DestParams, FwdMethod, Protocol, ServiceKey, ServiceParams,
};

use crate::seed::{CLIENT, RS1, RS2, VIP};
use crate::{Lab, Reply};

const TCP: crate::Protocol = crate::Protocol::Tcp;

const SERVICE: SocketAddrV4 = SocketAddrV4::new(VIP, 80);

fn service_key() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: 80,
    }
}

fn scheduler(name: &str) -> ServiceParams {
    ServiceParams {
        scheduler: name.into(),
        ..ServiceParams::default()
    }
}

fn masq(weight: i32) -> DestParams {
    DestParams {
        fwd: FwdMethod::Masq,
        weight,
        ..DestParams::default()
    }
}

fn rs(addr: std::net::Ipv4Addr) -> DestKey {
    DestKey {
        addr: IpAddr::V4(addr),
        port: 80,
    }
}

/// `-A -t VIP:80 -s rr`, `-a … -r RS1 -m`, `-a … -r RS2 -m`.
fn seeded() -> Lab {
    let lab = Lab::seed();
    let ctl = lab.director().control(lab.now());
    ctl.add_service(service_key(), scheduler("rr")).unwrap();
    for host in [RS1, RS2] {
        ctl.add_dest(service_key(), rs(host), masq(1)).unwrap();
    }
    lab
}

fn answers(lab: &mut Lab, count: usize) -> Vec<String> {
    lab.request(TCP, SERVICE, CLIENT, count)
        .unwrap()
        .iter()
        .map(Reply::to_string)
        .collect()
}

/// (ActiveConn, InActConn) of each real server, in list order.
fn conns(lab: &Lab) -> Vec<(IpAddr, u32, u32)> {
    lab.director().control(lab.now()).services()[0]
        .dests
        .iter()
        .map(|d| (d.key.addr, d.active_conns, d.inact_conns))
        .collect()
}

#[test]
fn rr_answers_from_the_most_recently_added_server_first_and_closed_connections_are_inactive() {
    let mut lab = seeded();
    let (rs1, rs2) = ("RS1 192.168.100.7", "RS2 192.168.100.9");
    assert_eq!(answers(&mut lab, 4), [rs2, rs1, rs2, rs1]);
    // Each connection was closed by the client and waits in TIME_WAIT at the director.
    assert_eq!(
        conns(&lab),
        [(IpAddr::V4(RS2), 0, 2), (IpAddr::V4(RS1), 0, 2)]
    );
}

#[test]
fn wrr_with_rs1_at_weight_3_answers_as_the_kernel_does() {
    let mut lab = seeded();
    answers(&mut lab, 6);
    let ctl = lab.director().control(lab.now());
    ctl.edit_service(service_key(), scheduler("wrr")).unwrap();
    ctl.edit_dest(service_key(), rs(RS1), masq(3)).unwrap();
    let picks: Vec<String> = answers(&mut lab, 8)
        .iter()
        .map(|a| a[..3].to_string())
        .collect();
    assert_eq!(
        picks,
        ["RS2", "RS1", "RS1", "RS1", "RS2", "RS1", "RS1", "RS1"]
    );
    assert_eq!(
        conns(&lab),
        [(IpAddr::V4(RS2), 0, 5), (IpAddr::V4(RS1), 0, 9)]
    );
}

#[test]
fn without_a_service_the_vip_does_not_answer_and_the_client_times_out() {
    let mut lab = Lab::seed();
    let before = lab.now();
    assert_eq!(
        lab.request(TCP, SERVICE, CLIENT, 1).unwrap(),
        [Reply::TimedOut]
    );
    assert_eq!(lab.now().saturating_since(before), crate::CLIENT_TIMEOUT);
}

#[test]
fn a_real_server_with_nothing_on_the_port_resets_the_connection() {
    let lab = seeded();
    let ctl = lab.director().control(lab.now());
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: 8080,
    };
    ctl.add_service(key, scheduler("rr")).unwrap();
    ctl.add_dest(
        key,
        DestKey {
            port: 8080,
            ..rs(RS1)
        },
        masq(1),
    )
    .unwrap();
    let mut lab = lab;
    let replies = lab
        .request(TCP, SocketAddrV4::new(VIP, 8080), CLIENT, 1)
        .unwrap();
    assert_eq!(replies, [Reply::Refused]);
}

#[test]
fn the_same_requests_take_the_same_simulated_time() {
    let run = || {
        let mut lab = seeded();
        answers(&mut lab, 5);
        lab.now()
    };
    assert_eq!(run(), run());
}

#[test]
fn a_client_the_lab_does_not_have_is_named() {
    let mut lab = seeded();
    let err = lab.request(TCP, SERVICE, RS1, 1).unwrap_err();
    assert_eq!(err, crate::SimError::NoSuchClient(RS1));
}

#[test]
fn a_udp_service_is_echoed_by_the_real_server_and_a_closed_port_is_unreachable() {
    let lab = seeded();
    let ctl = lab.director().control(lab.now());
    for port in [80, 53] {
        let key = ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: IpAddr::V4(VIP),
            port,
        };
        ctl.add_service(key, scheduler("rr")).unwrap();
        ctl.add_dest(key, DestKey { port, ..rs(RS2) }, masq(1))
            .unwrap();
    }
    let mut lab = lab;
    let udp = crate::Protocol::Udp;
    let echoed = lab.request(udp, SERVICE, CLIENT, 2).unwrap();
    let echo = Reply::Answered("RS2 ping\n".into());
    assert_eq!(echoed, [echo.clone(), echo]);
    // RS2's ICMP port unreachable comes back through the director, rewritten for the
    // client, which takes it as the answer.
    let closed = lab
        .request(udp, SocketAddrV4::new(VIP, 53), CLIENT, 1)
        .unwrap();
    assert_eq!(closed, [Reply::Refused]);
}

#[test]
fn a_capture_gets_every_stage_of_a_connection_whose_syn_waited_for_arp() {
    use masq_core::trace::{Stage, TraceFilter};
    use masq_core::verdict::Side;
    let mut lab = seeded();
    assert_eq!(
        lab.director().neighbour_table(Side::Dip).peek(RS2),
        None,
        "the director does not know RS2's MAC yet: the first SYN waits for ARP"
    );
    let capture = lab
        .director()
        .trace
        .subscribe_with_frames(TraceFilter::default(), 64);
    assert_eq!(answers(&mut lab, 1), ["RS2 192.168.100.9"]);
    let frames: Vec<_> = capture.frames.as_ref().unwrap().try_iter().collect();
    let stages: Vec<Stage> = frames.iter().map(|f| f.stage).take(4).collect();
    assert_eq!(
        stages,
        [
            Stage::ClientToVip,
            Stage::DirectorToServer,
            Stage::ServerToDirector,
            Stage::DirectorToClient
        ]
    );
    let topology = crate::seed::topology();
    let rs2_mac = topology
        .dip_side
        .iter()
        .find(|h| h.addr == RS2)
        .unwrap()
        .mac;
    let stage2 = &frames[1].bytes;
    assert_eq!(stage2[0..6], rs2_mac.0, "stage 2 leaves addressed to RS2");
    assert_eq!(
        stage2[6..12],
        topology.director.dip_side.mac.0,
        "from the DIP side"
    );
}
