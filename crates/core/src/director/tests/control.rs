//! The control plane's view: ipvsadm's errors, persistence and its templates, traces,
//! diagnosis and what the I/O layer is told to forward.

use super::*;

#[test]
fn control_errors_are_the_kernels() {
    use crate::control::ControlError;
    let lab = Lab::seed();
    let svc = service(Protocol::Tcp, 80);
    let ctl = lab.ctl();
    assert_eq!(
        ctl.add_service(svc, ServiceParams::default()),
        Err(ControlError::Exists)
    );
    assert_eq!(
        ctl.add_service(
            service(Protocol::Tcp, 81),
            ServiceParams {
                scheduler: "nosuch".into(),
                ..Default::default()
            }
        ),
        Err(ControlError::NotFound)
    );
    assert_eq!(
        ctl.add_dest(svc, rs(RS1, 80), masq(1)),
        Err(ControlError::Exists)
    );
    assert_eq!(
        ctl.edit_dest(svc, rs(Ipv4Addr::new(192, 168, 100, 99), 80), masq(1)),
        Err(ControlError::NotFound)
    );
    assert_eq!(
        ctl.add_dest(service(Protocol::Tcp, 9999), rs(RS1, 80), masq(1)),
        Err(ControlError::NoService)
    );
    assert_eq!(
        ctl.add_dest(
            svc,
            rs(Ipv4Addr::new(192, 168, 100, 11), 80),
            DestParams {
                u_threshold: 1,
                l_threshold: 5,
                ..masq(1)
            }
        ),
        Err(ControlError::OutOfRange)
    );
    assert_eq!(
        ctl.add_dest(svc, rs(Ipv4Addr::new(224, 0, 0, 1), 80), masq(1)),
        Err(ControlError::Invalid)
    );
    assert_eq!(
        ctl.delete_service(service(Protocol::Tcp, 9999)),
        Err(ControlError::NoService)
    );
    // Destinations are listed newest first (kernel list order).
    let order: Vec<_> = ctl.services()[0].dests.iter().map(|d| d.key.addr).collect();
    assert_eq!(order, vec![IpAddr::V4(RS2), IpAddr::V4(RS1)]);
}

#[test]
fn persistence_keeps_a_client_on_one_server_even_when_quiesced() {
    let mut lab = Lab::seed();
    let svc = service(Protocol::Tcp, 80);
    lab.ctl()
        .edit_service(
            svc,
            ServiceParams {
                scheduler: "rr".into(),
                persistent: Some(60),
                ..ServiceParams::default()
            },
        )
        .unwrap();
    let pick = |lab: &mut Lab, sport: u16| {
        let mut syn = from_client(sport, SYN);
        assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
        seen(&syn).dst.0
    };
    let first = pick(&mut lab, 30000);
    for sport in 30001..30020 {
        assert_eq!(
            pick(&mut lab, sport),
            first,
            "persistence broken at {sport}"
        );
    }
    let views = lab.ctl().services();
    let persist: u32 = views[0].dests.iter().map(|d| d.persist_conns).sum();
    assert_eq!(persist, 1, "one template");
    let templates: Vec<_> = lab
        .ctl()
        .connections()
        .into_iter()
        .filter(|c| c.template)
        .collect();
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].client, (IpAddr::V4(CLIENT), 0));
    assert_eq!(templates[0].state, "NONE");
    // Quiescing the server does not break persistence (expire_quiescent_template=0).
    let first_key = rs(first, 80);
    lab.ctl().edit_dest(svc, first_key, masq(0)).unwrap();
    assert_eq!(pick(&mut lab, 30100), first);
    // Deleting it does: the template is invalid and the client is scheduled afresh.
    lab.ctl().delete_dest(svc, first_key).unwrap();
    assert_ne!(pick(&mut lab, 30200), first);
}

#[test]
fn a_template_outlives_its_timeout_while_it_controls_connections() {
    let mut lab = Lab::seed();
    let svc = service(Protocol::Tcp, 80);
    lab.ctl()
        .edit_service(
            svc,
            ServiceParams {
                scheduler: "rr".into(),
                persistent: Some(10),
                ..ServiceParams::default()
            },
        )
        .unwrap();
    let mut syn = from_client(30000, SYN);
    lab.handle(Side::Vip, &mut syn);
    let mut ack = from_client(30000, ACK);
    lab.handle(Side::Vip, &mut ack);
    lab.advance(11);
    lab.housekeeping();
    assert_eq!(
        lab.director.templates.len(),
        1,
        "re-armed: an ESTABLISHED conn uses it"
    );
    lab.advance(901);
    lab.housekeeping();
    assert_eq!(lab.director.connection_count(), 0);
    lab.advance(61);
    lab.housekeeping();
    assert!(lab.director.templates.is_empty());
    let persist: u32 = lab.ctl().services()[0]
        .dests
        .iter()
        .map(|d| d.persist_conns)
        .sum();
    assert_eq!(persist, 0);
}

#[test]
fn a_trace_shows_the_four_stages_the_choice_and_the_states() {
    use crate::trace::{TraceFilter, TraceKind};
    let mut lab = Lab::seed();
    let sub = lab.director.trace.subscribe(TraceFilter::default(), 64);
    let mut syn = from_client(40000, SYN);
    lab.handle(Side::Vip, &mut syn);
    let mut syn_ack = from_rs(RS2, RS2_MAC, 40000, SYN | ACK);
    lab.handle(Side::Dip, &mut syn_ack);
    let mut ack = from_client(40000, ACK);
    lab.handle(Side::Vip, &mut ack);
    let mut stray = from_client(40001, ACK);
    lab.handle(Side::Vip, &mut stray);
    let events: Vec<_> = sub.events.try_iter().map(|e| e.kind).collect();
    let stages: Vec<(u8, Ipv4Addr, Ipv4Addr)> = events
        .iter()
        .filter_map(|k| match k {
            TraceKind::Stage(s, v) => Some((*s as u8, *v.src.ip(), *v.dst.ip())),
            _ => None,
        })
        .collect();
    assert_eq!(
        stages,
        vec![
            (1, CLIENT, VIP),
            (2, CLIENT, RS2),
            (3, RS2, CLIENT),
            (4, VIP, CLIENT),
        ],
        "only the first packet each way, by default"
    );
    assert!(events.iter().any(|k| matches!(
        k,
        TraceKind::Scheduled(c) if c.scheduler == "rr" && *c.dest.ip() == RS2 && c.candidates == 2
    )));
    let states: Vec<_> = events
        .iter()
        .filter_map(|k| match k {
            TraceKind::StateChange { from, to } => Some((from.name(), to.name())),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![("NONE", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED")]
    );
    assert!(events.iter().any(|k| matches!(
        k,
        TraceKind::Dropped {
            reason: DropReason::TcpNotSyn,
            ..
        }
    )));
}

#[test]
fn a_burst_of_syns_is_not_a_wrong_gateway_but_lasting_silence_is() {
    use crate::diagnose::Finding;
    let mut lab = one_server(None, service(Protocol::Tcp, 80), 80, true);
    let no_replies = |lab: &Lab| {
        lab.director
            .diagnose(lab.now)
            .iter()
            .any(|f| matches!(f, Finding::NoReplies { .. }))
    };
    // A busy moment: 32 SYNs in flight before the first SYN+ACK comes back.
    for port in 0..32 {
        lab.handle(Side::Vip, &mut from_client(30000 + port, SYN));
    }
    assert!(!no_replies(&lab), "SYNs in flight are not silence");
    lab.handle(Side::Dip, &mut from_rs(RS1, RS1_MAC, 30000, SYN | ACK));
    lab.advance(2);
    assert!(!no_replies(&lab), "the server answered");
    // Now it stops answering for good.
    for port in 100..103 {
        lab.handle(Side::Vip, &mut from_client(30000 + port, SYN));
    }
    assert!(!no_replies(&lab));
    lab.advance(2);
    let findings = lab.director.diagnose(lab.now);
    assert!(
        findings.iter().any(|f| f.problem()
            == "RS 192.168.100.7 received 3 SYNs but never answered through 192.168.100.10: is its default gateway the DIP?"),
        "{findings:?}"
    );
}

#[test]
fn forwarded_services_and_real_servers_leave_out_what_is_not_forwarded() {
    let lab = Lab::seed();
    let ctl = lab.ctl();
    // RS1 again, on another port of another service: one address.
    ctl.add_service(service(Protocol::Udp, 53), rr()).unwrap();
    ctl.add_dest(service(Protocol::Udp, 53), rs(RS1, 53), masq(1))
        .unwrap();
    ctl.add_service(service(Protocol::Tcp, 0), rr()).unwrap();
    // Not forwarded: SCTP, fwmark, IPv6.
    ctl.add_service(service(Protocol::Sctp, 80), rr()).unwrap();
    let fwmark = ServiceKey::Fwmark {
        mark: 1,
        family: Family::Inet,
    };
    ctl.add_service(fwmark, rr()).unwrap();
    let v6 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        port: 80,
    };
    ctl.add_service(v6, rr()).unwrap();
    let other_rs = Ipv4Addr::new(192, 168, 100, 20);
    ctl.add_dest(fwmark, rs(other_rs, 80), masq(1)).unwrap();

    let table = lab.director.services();
    assert_eq!(
        table.forwarded_services(),
        [
            (Protocol::Tcp, VIP, 0),
            (Protocol::Tcp, VIP, 80),
            (Protocol::Udp, VIP, 53),
        ]
    );
    // Real servers of every service, the fwmark one's included, each once, sorted.
    assert_eq!(table.real_server_addrs(), [RS1, RS2, other_rs]);
}
