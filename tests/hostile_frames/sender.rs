//! Sends one side's corpus from a lab namespace and reads masqd's drop counters after
//! each kind.

use std::time::{Duration, Instant};

use crate::common::Lab;
use crate::corpus::{Drop, Expect, FragNeeded, HOSTILE_PY, PER_KIND};
use crate::lab::{delta, drops};
use crate::results::KindResult;

/// Who sends one side's corpus, from where, to whom.
pub struct Sender<'a> {
    pub side: &'static str,
    pub ns: &'a str,
    pub iface: &'a str,
    pub src_mac: &'a str,
    pub dst_mac: &'a str,
    /// The first marker of this side (see [`VIP_BASE`](crate::corpus::VIP_BASE)).
    pub base: u32,
    /// The client port of the held connection the ICMP errors and TTL 1 segments are about.
    pub held_port: u16,
    /// The real server of that connection.
    pub rs_ip: &'a str,
}

impl Sender<'_> {
    /// Sends `cases` in order, `PER_KIND` frames each, and reads the drop counters after
    /// each kind: for a kind expected dropped, until they have moved by all it sent (or 3 s
    /// passed); for the others, after a pause.
    pub fn send(&self, lab: &Lab, cases: &[(&'static str, Expect)]) -> Vec<KindResult> {
        let script = lab.state_dir().join("hostile.py");
        std::fs::write(&script, HOSTILE_PY).expect("writing hostile.py");
        let ack_dir = lab.state_dir().join(format!("acks-{}", self.side));
        std::fs::create_dir_all(&ack_dir).expect("creating the ack directory");
        let kinds: Vec<String> = cases.iter().map(|(k, _)| format!("\"{k}\"")).collect();
        let config = format!(
            "{{\"iface\": \"{}\", \"src_mac\": \"{}\", \"dst_mac\": \"{}\", \
             \"count\": {PER_KIND}, \"base\": {}, \"kinds\": [{}], \"held_port\": {}, \
             \"rs_ip\": \"{}\", \"ack_dir\": \"{}\"}}",
            self.iface,
            self.src_mac,
            self.dst_mac,
            self.base,
            kinds.join(", "),
            self.held_port,
            self.rs_ip,
            ack_dir.display()
        );
        let mut sender = lab.spawn(
            self.ns,
            &format!("hostile-{}", self.side),
            &["/usr/bin/python3", &script.to_string_lossy(), &config],
        );
        let mut results = Vec::new();
        let mut before = drops(lab);
        for &(kind, expect) in cases {
            let line = format!("sent {kind} ");
            sender.wait_for_output(&line, Duration::from_secs(60));
            let output = sender.output();
            let fields: Vec<&str> = output
                .lines()
                .find(|l| l.starts_with(&line))
                .expect("the line just waited for")
                .split(' ')
                .collect();
            let (base, sent): (u32, usize) = (
                fields[2].parse().expect("base"),
                fields[3].parse().expect("count"),
            );
            let wait = match expect {
                Drop(_) | FragNeeded => Duration::from_secs(3),
                _ => Duration::from_millis(300),
            };
            let deadline = Instant::now() + wait;
            let dropped = loop {
                std::thread::sleep(Duration::from_millis(100));
                let d = delta(&drops(lab), &before);
                let settled = match expect {
                    Drop(reason) => d.get(reason).copied().unwrap_or(0) >= sent as u64,
                    FragNeeded => d.values().sum::<u64>() >= sent as u64,
                    _ => false,
                };
                if settled || Instant::now() >= deadline {
                    break d;
                }
            };
            before = drops(lab);
            results.push(KindResult {
                side: self.side,
                kind,
                expect,
                base,
                sent,
                dropped,
            });
            std::fs::write(ack_dir.join(format!("ack-{kind}")), b"").expect("acknowledging");
        }
        sender.wait_for_output("corpus done", Duration::from_secs(10));
        results
    }
}
