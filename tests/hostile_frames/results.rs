//! What each kind of the corpus did, and the checks on it: masqd's counters moved by
//! exactly what was sent, under the expected reason; the director sent what it owes for
//! each kind and nothing else.

use std::collections::BTreeMap;

use crate::corpus::{Drop, Expect, Forward, FragNeeded, PassThrough};

/// What one kind did to masqd's counters.
pub struct KindResult {
    pub side: &'static str,
    pub kind: &'static str,
    pub expect: Expect,
    pub base: u32,
    pub sent: usize,
    pub dropped: BTreeMap<String, u64>,
}

/// What must have come out of the director for each kind: forwarded kinds on the far
/// side, ICMP back towards the sender of a TTL 1 or too big packet; nothing for the rest.
pub fn expected_out(results: &[KindResult]) -> BTreeMap<(&'static str, &'static str), usize> {
    let mut want = BTreeMap::new();
    for r in results {
        let far = if r.side == "vip" { "dip" } else { "vip" };
        match (r.expect, r.kind) {
            (Forward | PassThrough(_), _) => {
                want.insert((far, r.kind), r.sent);
            }
            (FragNeeded, _) | (_, "ttl_1_syn" | "ttl_0_syn" | "dip_ttl_1_on_connection") => {
                want.insert((r.side, r.kind), r.sent);
            }
            _ => {}
        }
    }
    want
}

/// Per kind: the counters moved by exactly what was sent, under the expected reason.
pub fn check_counters(results: &[KindResult], failures: &mut Vec<String>) {
    for r in results {
        let ok = match r.expect {
            Drop(reason) => r.dropped == BTreeMap::from([(reason.to_owned(), r.sent as u64)]),
            FragNeeded => r.dropped.values().sum::<u64>() == r.sent as u64,
            _ => r.dropped.is_empty(),
        };
        if !ok {
            failures.push(format!(
                "{} {}: expected {:?}, counters moved {:?}",
                r.side, r.kind, r.expect, r.dropped
            ));
        }
    }
}

/// Prints what each kind did: sent, expected, dropped, and what the director sent for it.
pub fn print_table(results: &[KindResult], seen: &BTreeMap<(&str, &str), usize>) {
    eprintln!(
        "{:<4} {:<34} {:>4}  {:<26} dropped",
        "side", "kind", "sent", "expected"
    );
    for r in results {
        let outcome = match r.expect {
            Drop(reason) => format!("drop {reason}"),
            other => format!("{other:?}"),
        };
        let dropped: Vec<String> = r.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let out: usize = seen
            .iter()
            .filter(|((_, k), _)| *k == r.kind)
            .map(|(_, n)| n)
            .sum();
        eprintln!(
            "{:<4} {:<34} {:>4}  {:<26} {}{}",
            r.side,
            r.kind,
            r.sent,
            outcome,
            if dropped.is_empty() {
                "0".into()
            } else {
                dropped.join(", ")
            },
            if out > 0 {
                format!("  (director sent {out} for it)")
            } else {
                String::new()
            }
        );
    }
}
