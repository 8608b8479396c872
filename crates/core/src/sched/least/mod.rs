//! The engine shared by the least-load schedulers `lc`, `wlc`, `sed`, `nq` and `ovf`.
//!
//! Each of them is, in the kernel, one walk of the list in order that keeps the first
//! destination whose load is strictly below the best so far. Every one of those walks
//! picks the same destination as "the least [`Load`] among the destinations that may take
//! a connection; among equal loads, the first in list order" — because each compares a
//! fraction by cross-multiplication, which orders fractions totally. A scheduler therefore
//! only states its rule ([`LoadRule`]: who is eligible and what their load is) and this
//! module finds the winner, in one of two ways:
//!
//! * a linear walk of the list, for short lists, where it is fastest;
//! * from [`LoadIndex`] once a service has [`INDEX_FROM`] destinations: a tournament tree
//!   kept current by the destinations themselves, which report each counter change to it
//!   (`feed`), so a pick costs O(log n) per destination changed since the last pick
//!   instead of O(n).
//!
//! Both answer exactly what the kernel's loop answers for the counters they read; the
//! property tests in `tests.rs` hold them to literal ports of the kernel's loops.

use std::cmp::Ordering;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{lc::Lc, nq::Nq, ovf::Ovf, sed::Sed, wlc::Wlc};
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Destination;

pub(crate) mod feed;
mod index;
mod tournament;

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

use index::LoadIndex;

/// Destinations from which a service's least-load scheduler keeps an index; below it the
/// linear walk is as fast or faster (benches/schedulers.rs, `least/<name>/linear` against
/// `least/<name>/indexed`: on a 2-vCPU EPYC the two cross between 32 and 64 destinations,
/// at about 100–150 ns a decision, the loop's own bookkeeping included).
pub const INDEX_FROM: usize = 64;

/// A destination's load as the fraction `num / den` (`den > 0` for a destination), compared
/// exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Numerator: connections, as the rule counts them.
    pub num: u64,
    /// Denominator: the weight (1 for `lc`, which ignores it).
    pub den: u64,
}

impl Load {
    /// Compares `num / den` by cross-multiplication, as the kernel does, in 128 bits so no
    /// counter and weight can overflow it.
    pub fn cmp_load(&self, other: &Load) -> Ordering {
        let lhs = u128::from(self.num) * u128::from(other.den);
        let rhs = u128::from(other.num) * u128::from(self.den);
        lhs.cmp(&rhs)
    }
}

/// What makes one least-load scheduler: its name, and how it sees a destination.
pub trait LoadRule: Send + Sync + std::fmt::Debug + 'static {
    /// The ipvsadm name.
    const NAME: &'static str;

    /// The destination's load, or `None` when the rule does not let it take a new
    /// connection (overloaded, quiesced, full). Reads only ActiveConn, InActConn, the
    /// weight and the OVERLOAD flag: the index re-reads a destination when one of those
    /// changes.
    fn load(dest: &Destination) -> Option<Load>;
}

/// A least-load scheduler following rule `R`.
#[derive(Debug)]
pub struct Least<R: LoadRule> {
    /// Present while the service has at least `index_from` destinations.
    index: Option<LoadIndex<R>>,
    index_from: usize,
    rule: PhantomData<R>,
}

impl<R: LoadRule> Least<R> {
    /// init_service, with the index from [`INDEX_FROM`] destinations on.
    pub fn new(dests: &[Arc<Destination>]) -> Self {
        Least::with_index_from(dests, INDEX_FROM)
    }

    /// init_service, with the index kept from `index_from` destinations on: 0 always
    /// indexes, `usize::MAX` always walks the list (benches compare the two).
    pub fn with_index_from(dests: &[Arc<Destination>], index_from: usize) -> Self {
        let mut least = Least {
            index: None,
            index_from,
            rule: PhantomData,
        };
        least.index_or_walk(dests);
        least
    }

    /// Builds or drops the index when the list crosses `index_from`.
    fn index_or_walk(&mut self, dests: &[Arc<Destination>]) {
        let wanted = dests.len() >= self.index_from;
        if wanted && self.index.is_none() {
            self.index = Some(LoadIndex::build(dests));
        } else if !wanted {
            self.index = None;
        }
    }
}

/// The least-load scheduler called `name` (`lc`, `wlc`, `sed`, `nq`, `ovf`) for `dests`,
/// with the index kept from `index_from` destinations on; `None` for another name.
/// [`crate::sched::create`] builds them with [`INDEX_FROM`]; benches and tests choose.
pub fn create(
    name: &str,
    dests: &[Arc<Destination>],
    index_from: usize,
) -> Option<Box<dyn Scheduler>> {
    fn boxed<R: LoadRule>(dests: &[Arc<Destination>], from: usize) -> Box<dyn Scheduler> {
        Box::new(Least::<R>::with_index_from(dests, from))
    }
    let scheduler = match name {
        "lc" => boxed::<Lc>(dests, index_from),
        "wlc" => boxed::<Wlc>(dests, index_from),
        "sed" => boxed::<Sed>(dests, index_from),
        "nq" => boxed::<Nq>(dests, index_from),
        "ovf" => boxed::<Ovf>(dests, index_from),
        _ => return None,
    };
    Some(scheduler)
}

/// The kernel's walk: the first destination of least load among those `R` accepts.
fn walk<R: LoadRule>(dests: &[Arc<Destination>]) -> Option<usize> {
    let mut least: Option<(usize, Load)> = None;
    for (i, dest) in dests.iter().enumerate() {
        let Some(load) = R::load(dest) else {
            continue;
        };
        if least.is_none_or(|(_, l)| load.cmp_load(&l) == Ordering::Less) {
            least = Some((i, load));
        }
    }
    least.map(|(i, _)| i)
}

impl<R: LoadRule> Scheduler for Least<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn dests_changed(&mut self, dests: &[Arc<Destination>], change: DestChange) {
        match (&mut self.index, change) {
            (Some(index), DestChange::Added) => index.added(&dests[0]),
            (Some(index), DestChange::Edited(i)) => index.edited(i),
            (Some(index), DestChange::Removed(i)) => index.removed(i),
            (None, _) => {}
        }
        self.index_or_walk(dests);
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        match &mut self.index {
            Some(index) => index.pick(),
            None => walk::<R>(dests),
        }
    }
}

/// The weight of a destination that may take new connections: not overloaded and not
/// quiesced (weight 0; the control plane refuses negative weights, as the kernel does).
pub(crate) fn open_weight(dest: &Destination) -> Option<u64> {
    let weight = u64::try_from(dest.weight()).ok().filter(|&w| w > 0)?;
    (!dest.is_overloaded()).then_some(weight)
}
