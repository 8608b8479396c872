//! Connection sync at the table: a backup enters what a master sent and forwards the
//! clients' next segments by it; a master queues what the kernel's rule says to send.

use masq_wire::ipvs_sync::{flags, MessageWriter, SyncConn};

use super::*;
use crate::sync::{EntryRefusal, SyncRole};

/// What the seed lab's master sends for an ESTABLISHED connection from the client's
/// port `cport` to the real server `rs`.
fn established(cport: u16, rs: Ipv4Addr) -> SyncConn {
    SyncConn {
        protocol: 6,
        flags: flags::MASQ,
        state: 1,
        caddr: IpAddr::V4(CLIENT),
        cport,
        vaddr: IpAddr::V4(VIP),
        vport: 80,
        daddr: IpAddr::V4(rs),
        dport: 80,
        fwmark: 0,
        timeout: 900,
        seq: None,
    }
}

fn message(syncid: u8, entries: &[SyncConn]) -> Vec<u8> {
    let mut buf = vec![0u8; 1472];
    let mut writer = MessageWriter::new(&mut buf, syncid);
    for e in entries {
        writer.push(e).expect("fits");
    }
    let len = writer.finish();
    buf.truncate(len);
    buf
}

/// `--start-daemon ROLE --mcast-interface eth0`.
fn daemon(role: SyncRole) -> crate::control::DaemonRequest {
    crate::control::DaemonRequest {
        role,
        mcast_interface: "eth0".into(),
        syncid: 0,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    }
}

fn receive(lab: &mut Lab, payload: &[u8], syncid: u8) {
    let now = lab.now;
    lab.worker.apply_sync_message(now, payload, syncid);
}

fn refused(lab: &Lab, why: EntryRefusal) -> u64 {
    lab.director
        .sync_counters
        .conns_refused()
        .find(|&(r, _)| r == why)
        .map_or(0, |(_, n)| n)
}

#[test]
fn a_synced_established_connection_forwards_the_next_segment_without_a_syn() {
    let mut lab = Lab::seed();
    // rr would send a new connection to RS2 first: the synced one goes to RS1.
    receive(&mut lab, &message(7, &[established(40000, RS1)]), 0);
    let listed = lab.ctl().connections();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].state, listed[0].expires_secs, listed[0].dest.0),
        ("ESTABLISHED", 900, IpAddr::V4(RS1))
    );
    assert_eq!(lab.conns_of(RS1), (1, 0), "counted as an active connection");
    let mut data = from_client(40000, ACK);
    assert_eq!(
        lab.handle(Side::Vip, &mut data),
        Verdict::Forward(Side::Dip)
    );
    assert_eq!(seen(&data).dst, (RS1, 80));
    assert_eq!(seen(&data).dst_mac, RS1_MAC);
    // And the real server's answer finds it too.
    let mut answer = from_rs(RS1, RS1_MAC, 40000, ACK);
    assert_eq!(
        lab.handle(Side::Dip, &mut answer),
        Verdict::Forward(Side::Vip)
    );
    assert_eq!(seen(&answer).src, (VIP, 80));
}

#[test]
fn a_known_connection_follows_the_masters_state_and_timer() {
    let mut lab = Lab::seed();
    receive(&mut lab, &message(0, &[established(40000, RS1)]), 0);
    let closing = SyncConn {
        state: 5,
        timeout: 120,
        flags: flags::INACTIVE,
        ..established(40000, RS1)
    };
    receive(&mut lab, &message(0, &[closing]), 0);
    let listed = lab.ctl().connections();
    assert_eq!(
        (listed.len(), listed[0].state, listed[0].expires_secs),
        (1, "TIME_WAIT", 120)
    );
    assert_eq!(lab.conns_of(RS1), (0, 1));
    let c = &lab.director.sync_counters;
    assert_eq!(
        (c.conns_created.load(Relaxed), c.conns_updated.load(Relaxed)),
        (1, 1)
    );
    // It expires when the master said.
    lab.advance(121);
    lab.housekeeping();
    assert!(lab.ctl().connections().is_empty());
}

#[test]
fn entries_for_what_this_director_lacks_are_refused_by_reason() {
    let mut lab = Lab::seed();
    let elsewhere = SyncConn {
        vport: 443,
        ..established(40001, RS1)
    };
    let stranger = established(40002, Ipv4Addr::new(192, 168, 100, 99));
    let ok = established(40003, RS2);
    receive(&mut lab, &message(0, &[elsewhere, stranger, ok]), 0);
    assert_eq!(refused(&lab, EntryRefusal::UnknownService), 1);
    assert_eq!(refused(&lab, EntryRefusal::UnknownDestination), 1);
    assert_eq!(lab.ctl().connections().len(), 1, "the good entry applies");
    // Another syncid is ignored whole; a message cut short is refused whole.
    receive(&mut lab, &message(3, &[established(40004, RS1)]), 7);
    let cut = message(0, &[established(40005, RS1)]);
    receive(&mut lab, &cut[..cut.len() - 4], 0);
    let c = &lab.director.sync_counters;
    assert_eq!(c.messages_other_syncid.load(Relaxed), 1);
    let refusals: u64 = c.messages_refused().map(|(_, n)| n).sum();
    assert_eq!(refusals, 1);
    assert_eq!(lab.ctl().connections().len(), 1);
}

#[test]
fn an_entry_forwarded_another_way_than_the_backups_real_server_is_refused() {
    let mut lab = Lab::seed();
    // The seed's real servers are NAT (-m): a direct-routing entry for one of them would
    // become a connection forwarded unlike the master's.
    let routed = SyncConn {
        flags: flags::DROUTE,
        ..established(40010, RS1)
    };
    receive(&mut lab, &message(0, &[routed]), 0);
    assert_eq!(refused(&lab, EntryRefusal::Forwarding), 1);
    assert!(lab.ctl().connections().is_empty());
}

#[test]
fn synced_connections_count_against_max_conns() {
    let mut lab = bounded(4);
    let entries: Vec<SyncConn> = (0..6).map(|i| established(41000 + i, RS1)).collect();
    receive(&mut lab, &message(0, &entries), 0);
    // Established connections are never shed: what does not fit is refused.
    assert_eq!(lab.director.entry_count(), 4);
    assert_eq!(refused(&lab, EntryRefusal::TableFull), 2);
}

#[test]
fn synced_entries_never_shed_a_real_clients_connections() {
    let mut lab = bounded(4);
    // A full table of a real client's half-open connections, which a new client
    // connection would shed.
    for port in 0..4 {
        lab.handle(Side::Vip, &mut from_client(42000 + port, SYN));
    }
    assert_eq!(lab.director.entry_count(), 4);
    receive(&mut lab, &message(0, &[established(41000, RS1)]), 0);
    assert_eq!(refused(&lab, EntryRefusal::TableFull), 1);
    let listed = lab.ctl().connections();
    assert!(
        listed.iter().all(|c| c.state == "SYN_RECV"),
        "the client's connections stay: {listed:?}"
    );
}

#[test]
fn a_synced_template_sends_its_clients_new_connections_to_its_server() {
    let mut lab = Lab::seed();
    let svc = service(Protocol::Tcp, 80);
    let params = ServiceParams {
        persistent: Some(300),
        netmask: u32::MAX,
        ..rr()
    };
    lab.ctl().edit_service(svc, params).unwrap();
    let template = SyncConn {
        flags: flags::TEMPLATE | flags::INACTIVE,
        state: 1,
        cport: 0,
        timeout: 300,
        ..established(0, RS1)
    };
    receive(&mut lab, &message(0, &[template]), 0);
    assert_eq!(lab.director.template_count(), 1);
    // rr alone would pick RS2 first.
    for port in [42000, 42001] {
        let mut syn = from_client(port, SYN);
        assert_eq!(lab.handle(Side::Vip, &mut syn), Verdict::Forward(Side::Dip));
        assert_eq!(seen(&syn).dst.0, RS1);
    }
}

#[test]
fn a_master_queues_a_held_connection_at_its_third_client_packet() {
    let mut lab = Lab::seed();
    // No master: nothing is counted or queued.
    lab.handle(Side::Vip, &mut from_client(40000, SYN));
    lab.ctl().start_daemon(daemon(SyncRole::Master)).unwrap();
    let mut queued = Vec::new();
    let mut spare = Vec::with_capacity(crate::sync::outbox::SHARD_CAPACITY);
    for _ in 0..3 {
        lab.handle(Side::Vip, &mut from_client(40000, ACK));
        lab.director
            .sync_outbox
            .drain(&mut spare, |e| queued.push(*e));
    }
    assert_eq!(queued.len(), 1, "{queued:?}");
    let sent = queued[0];
    assert_eq!(
        (sent.state, sent.timeout, sent.cport, sent.daddr),
        (1, 900, 40000, seen_dst_of_first(&lab))
    );
    lab.ctl().stop_daemon(SyncRole::Master).unwrap();
    assert!(!lab.director.sync_outbox.is_active());
}

/// The real server the lab's only connection went to.
fn seen_dst_of_first(lab: &Lab) -> IpAddr {
    lab.ctl().connections()[0].dest.0
}

#[test]
fn a_backup_answers_no_arp_for_a_vip_until_it_stops() {
    let mut lab = Lab::seed();
    lab.ctl().start_daemon(daemon(SyncRole::Backup)).unwrap();
    let ask = || arp_frame(arp::OP_REQUEST, (CLIENT_MAC, CLIENT), (MacAddr::ZERO, VIP));
    assert_eq!(lab.handle(Side::Vip, &mut ask()), Verdict::NotOurs);
    lab.ctl().stop_daemon(SyncRole::Backup).unwrap();
    assert_eq!(
        lab.handle(Side::Vip, &mut ask()),
        Verdict::Forward(Side::Vip)
    );
}
