//! The kernel's loops as the kernel writes them (ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c,
//! ip_vs_nq.c, ip_vs_ovf.c), one walk of the list each: the answer the least-load engine
//! must give. wlc's and sed's loop is `wlc::least_loaded`, which lblc and lblcr use too.

use std::sync::Arc;

use crate::dest::Destination;
use crate::sched::wlc::least_loaded;

/// The kernel's pick for scheduler `name` over `dests`.
pub(super) fn pick(name: &str, dests: &[Arc<Destination>]) -> Option<usize> {
    match name {
        "lc" => lc(dests),
        "wlc" => least_loaded(dests, Destination::overhead),
        "sed" => least_loaded(dests, |d| i64::from(d.active_conns()) + 1),
        "nq" => nq(dests),
        "ovf" => ovf(dests),
        _ => unreachable!("not a least-load scheduler: {name}"),
    }
}

fn lc(dests: &[Arc<Destination>]) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for (i, dest) in dests.iter().enumerate() {
        if dest.is_overloaded() || dest.weight() == 0 {
            continue;
        }
        let doh = dest.overhead();
        if least.is_none_or(|(_, loh)| doh < loh) {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

fn nq(dests: &[Arc<Destination>]) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for (i, dest) in dests.iter().enumerate() {
        if dest.is_overloaded() || dest.weight() == 0 {
            continue;
        }
        if dest.active_conns() == 0 {
            return Some(i);
        }
        let doh = i64::from(dest.active_conns()) + 1;
        let wins = match least {
            None => true,
            Some((l, loh)) => loh * i64::from(dest.weight()) > doh * i64::from(dests[l].weight()),
        };
        if wins {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

fn ovf(dests: &[Arc<Destination>]) -> Option<usize> {
    let mut highest: Option<usize> = None;
    let mut hw = 0;
    for (i, dest) in dests.iter().enumerate() {
        let w = dest.weight();
        if dest.is_overloaded() || i64::from(dest.active_conns()) > i64::from(w) || w == 0 {
            continue;
        }
        if highest.is_none() || w > hw {
            highest = Some(i);
            hw = w;
        }
    }
    highest
}
