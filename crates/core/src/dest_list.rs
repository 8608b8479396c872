//! A service's destination list, changed only the way the kernel changes it
//! (`ip_vs_ctl.c`): `-a` inserts at the head, so the list is newest first; `-e` edits in
//! place; `-d` unlinks. After each change the service's scheduler hears of it through
//! [`Scheduler::dests_changed`], where the kernel calls its `add_dest` / `upd_dest` /
//! `del_dest` hooks.
//!
//! The director's control plane, the scheduler tests and masq-bench all drive schedulers
//! through this one type, so a scheduler sees the same list in every one of them.
//! Schedulers read it as a slice ([`DestList::as_slice`], or through `Deref`).

use std::ops::Deref;
use std::sync::Arc;

use crate::control::{DestKey, DestParams};
use crate::dest::Destination;
use crate::sched::{DestChange, Scheduler};

/// A service's destinations, newest first.
#[derive(Debug, Default)]
pub struct DestList {
    dests: Vec<Arc<Destination>>,
}

impl DestList {
    /// An empty list.
    pub fn new() -> Self {
        DestList::default()
    }

    /// `-a`: `dest` goes to the head of the list, available (it may come back from the
    /// trash), and `scheduler` is told.
    pub fn add(&mut self, dest: Arc<Destination>, scheduler: &mut dyn Scheduler) {
        dest.set_available(true);
        self.dests.insert(0, dest);
        scheduler.dests_changed(&self.dests, DestChange::Added);
    }

    /// `-e`: the destination at `index` takes `params` in place, and `scheduler` is told.
    ///
    /// # Panics
    /// If `index` is out of bounds.
    pub fn edit(&mut self, index: usize, params: &DestParams, scheduler: &mut dyn Scheduler) {
        self.dests[index].update(params);
        scheduler.dests_changed(&self.dests, DestChange::Edited(index));
    }

    /// `-d`: the destination at `index` is unlinked and no longer available, and
    /// `scheduler` is told. It is returned, counters and all, for the trash: connections
    /// may still hold it.
    ///
    /// # Panics
    /// If `index` is out of bounds.
    pub fn remove(&mut self, index: usize, scheduler: &mut dyn Scheduler) -> Arc<Destination> {
        let gone = self.dests.remove(index);
        gone.set_available(false);
        scheduler.dests_changed(&self.dests, DestChange::Removed(index));
        gone
    }

    /// The service goes (`-D`, `-C`): every destination is unlinked and no longer
    /// available. No scheduler hook runs: the scheduler goes with the service.
    pub fn unlink_all(&mut self) -> Vec<Arc<Destination>> {
        for dest in &self.dests {
            dest.set_available(false);
        }
        std::mem::take(&mut self.dests)
    }

    /// Where the destination `key` is in the list.
    pub fn position(&self, key: &DestKey) -> Option<usize> {
        self.dests.iter().position(|d| d.key == *key)
    }

    /// The destinations, newest first, as schedulers take them.
    pub fn as_slice(&self) -> &[Arc<Destination>] {
        &self.dests
    }
}

impl Deref for DestList {
    type Target = [Arc<Destination>];

    fn deref(&self) -> &Self::Target {
        &self.dests
    }
}

impl<'a> IntoIterator for &'a DestList {
    type Item = &'a Arc<Destination>;
    type IntoIter = std::slice::Iter<'a, Arc<Destination>>;

    fn into_iter(self) -> Self::IntoIter {
        self.dests.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::sched::SchedInput;

    /// Records every hook call and the list it was shown.
    #[derive(Debug, Default)]
    struct Recorder {
        calls: Vec<(DestChange, Vec<Ipv4Addr>)>,
    }

    impl Scheduler for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }

        fn dests_changed(&mut self, dests: &[Arc<Destination>], change: DestChange) {
            let addrs = dests.iter().filter_map(|d| d.ipv4()).collect();
            self.calls.push((change, addrs));
        }

        fn schedule(&mut self, _: &[Arc<Destination>], _: &SchedInput) -> Option<usize> {
            None
        }
    }

    fn rs(octet: u8) -> Arc<Destination> {
        Arc::new(Destination::for_test(
            Ipv4Addr::new(192, 168, 100, octet),
            80,
            1,
        ))
    }

    #[test]
    fn changes_are_the_kernels_and_each_is_announced_after_it_is_made() {
        let (a, b, c) = (
            Ipv4Addr::new(192, 168, 100, 7),
            Ipv4Addr::new(192, 168, 100, 9),
            Ipv4Addr::new(192, 168, 100, 11),
        );
        let mut list = DestList::new();
        let mut sched = Recorder::default();
        list.add(rs(7), &mut sched);
        list.add(rs(9), &mut sched);
        let trashed = rs(11);
        trashed.set_available(false);
        list.add(trashed.clone(), &mut sched);
        assert!(trashed.is_available(), "back from the trash");
        let edit = DestParams {
            weight: 3,
            ..DestParams::default()
        };
        let index = list.position(&list[2].key).expect("in the list");
        list.edit(index, &edit, &mut sched);
        assert_eq!(list[2].weight(), 3);
        let gone = list.remove(1, &mut sched);
        assert!(!gone.is_available());
        assert_eq!(
            sched.calls,
            vec![
                (DestChange::Added, vec![a]),
                (DestChange::Added, vec![b, a]),
                (DestChange::Added, vec![c, b, a]),
                (DestChange::Edited(2), vec![c, b, a]),
                (DestChange::Removed(1), vec![c, a]),
            ]
        );
        let all = list.unlink_all();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|d| !d.is_available()));
        assert!(list.as_slice().is_empty());
        assert_eq!(sched.calls.len(), 5, "no hook when the service goes");
    }
}
