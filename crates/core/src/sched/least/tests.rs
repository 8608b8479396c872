//! The least-load engine against the kernel's loops (`oracle.rs`): random services, random
//! histories of picks, connections opening, changing state and closing, edits, overloads,
//! destinations added (new or back from the trash) and removed; after every step the
//! walk and the index must pick what the kernel's loop picks.

use std::net::Ipv4Addr;
use std::sync::Arc;

use proptest::prelude::*;

use super::oracle;
use crate::control::DestParams;
use crate::dest::Destination;
use crate::dest_list::DestList;
use crate::sched::testutil::{from, Conn, Lab};
use crate::sched::Scheduler;

const NAMES: [&str; 5] = ["lc", "wlc", "sed", "nq", "ovf"];

/// Scheduler `name` with the index kept from `index_from` destinations on.
fn least(name: &str, dests: &[Arc<Destination>], index_from: usize) -> Box<dyn Scheduler> {
    super::create(name, dests, index_from).expect("a least-load scheduler")
}

/// One step of a service's life. Indices are taken modulo the current list or
/// connection count.
#[derive(Debug, Clone)]
enum Step {
    /// A new connection is scheduled; it stays open (active) or closes at once.
    Pick { held: bool },
    /// A connection reaches a destination without the scheduler (persistence).
    Bind { dest: usize, held: bool },
    /// An open connection moves between active and inactive.
    Toggle { conn: usize },
    /// A connection expires.
    Close { conn: usize },
    /// `-e` with a weight and thresholds.
    Edit {
        dest: usize,
        weight: i32,
        upper: u32,
        lower: u32,
    },
    /// The OVERLOAD flag flips (as thresholds would flip it).
    Overload { dest: usize, on: bool },
    /// The counters jump (a resurrected destination, many connections at once).
    Counters {
        dest: usize,
        active: u32,
        inactive: u32,
    },
    /// `-a` of a new destination, or of one back from the trash.
    Add { weight: i32, from_trash: bool },
    /// `-d`.
    Remove { dest: usize },
    /// `-E` to the same scheduler afresh (init_service on the current list).
    Reinit,
}

fn weight() -> impl Strategy<Value = i32> {
    prop_oneof![Just(0), 1..4i32, 1..=65535i32]
}

fn step() -> impl Strategy<Value = Step> {
    let i = any::<usize>();
    prop_oneof![
        8 => any::<bool>().prop_map(|held| Step::Pick { held }),
        2 => (i, any::<bool>()).prop_map(|(dest, held)| Step::Bind { dest, held }),
        3 => i.prop_map(|conn| Step::Toggle { conn }),
        5 => i.prop_map(|conn| Step::Close { conn }),
        1 => (i, weight(), 0..8u32, 0..8u32).prop_map(|(dest, weight, a, b)| Step::Edit {
            dest,
            weight,
            upper: a.max(b),
            lower: a.min(b),
        }),
        1 => (i, any::<bool>()).prop_map(|(dest, on)| Step::Overload { dest, on }),
        1 => (i, 0..600u32, 0..2000u32)
            .prop_map(|(dest, active, inactive)| Step::Counters { dest, active, inactive }),
        2 => (weight(), any::<bool>()).prop_map(|(weight, from_trash)| Step::Add { weight, from_trash }),
        1 => i.prop_map(|dest| Step::Remove { dest }),
        1 => Just(Step::Reinit),
    ]
}

/// A service driven step by step, checked against the oracle after each step.
struct Service {
    name: &'static str,
    index_from: usize,
    dests: DestList,
    sched: Box<dyn Scheduler>,
    /// Open connections: where they are and whether they are active.
    conns: Vec<(Arc<Destination>, bool)>,
    trash: Vec<Arc<Destination>>,
    next_addr: u32,
}

impl Service {
    fn new(name: &'static str, index_from: usize, weights: &[i32]) -> Service {
        let mut service = Service {
            name,
            index_from,
            dests: DestList::new(),
            sched: least(name, &[], index_from),
            conns: Vec::new(),
            trash: Vec::new(),
            next_addr: 0x0a00_0001,
        };
        for &w in weights {
            service.add_new(w);
        }
        service
    }

    fn add_new(&mut self, weight: i32) {
        let dest = Destination::for_test(Ipv4Addr::from(self.next_addr), 80, weight);
        self.next_addr += 1;
        self.dests.add(Arc::new(dest), self.sched.as_mut());
    }

    fn open(&mut self, dest: Arc<Destination>, held: bool) {
        dest.bind_conn();
        if held {
            dest.conn_became_active(true);
        }
        self.conns.push((dest, held));
    }

    fn run(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let n = self.dests.len();
        let c = self.conns.len();
        match *step {
            Step::Pick { held } => {
                let want = oracle::pick(self.name, &self.dests);
                let got = self.sched.schedule(&self.dests, &from(1, 1));
                prop_assert_eq!(got, want, "{} (index from {})", self.name, self.index_from);
                if let Some(i) = got {
                    self.open(Arc::clone(&self.dests[i]), held);
                }
            }
            Step::Bind { dest, held } if n > 0 => {
                self.open(Arc::clone(&self.dests[dest % n]), held)
            }
            Step::Toggle { conn } if c > 0 => {
                let (dest, active) = &mut self.conns[conn % c];
                *active = !*active;
                dest.conn_became_active(*active);
            }
            Step::Close { conn } if c > 0 => {
                let (dest, active) = self.conns.swap_remove(conn % c);
                dest.unbind_conn(active);
            }
            Step::Edit {
                dest,
                weight,
                upper,
                lower,
            } if n > 0 => {
                let params = DestParams {
                    weight,
                    u_threshold: upper,
                    l_threshold: lower,
                    ..DestParams::default()
                };
                self.dests.edit(dest % n, &params, self.sched.as_mut());
            }
            Step::Overload { dest, on } if n > 0 => {
                self.dests[dest % n].set_overloaded_for_test(on)
            }
            Step::Counters {
                dest,
                active,
                inactive,
            } if n > 0 => {
                self.dests[dest % n].set_conns_for_test(active, inactive);
            }
            Step::Add { weight, from_trash } => match self.trash.pop() {
                Some(old) if from_trash => {
                    old.update(&DestParams {
                        weight,
                        ..DestParams::default()
                    });
                    self.dests.add(old, self.sched.as_mut());
                }
                _ => self.add_new(weight),
            },
            Step::Remove { dest } if n > 0 => {
                let gone = self.dests.remove(dest % n, self.sched.as_mut());
                self.trash.push(gone);
            }
            Step::Reinit => self.sched = least(self.name, &self.dests, self.index_from),
            _ => {}
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn least_load_picks_what_the_kernel_loop_picks(
        name in proptest::sample::select(NAMES.to_vec()),
        index_from in prop_oneof![Just(0usize), 1..6usize, Just(usize::MAX)],
        weights in proptest::collection::vec(weight(), 0..12),
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let mut service = Service::new(name, index_from, &weights);
        for step in &steps {
            service.run(step)?;
        }
        service.run(&Step::Pick { held: true })?;
    }
}

#[test]
fn the_index_replays_the_kernels_observed_picks() {
    // c-leastconn.txt's sequences (the walk's tests in lc.rs, wlc.rs, ...), with the index
    // on from the first destination.
    let cases = [
        ("lc", Conn::Held, "11 9 7 11 9 7 11 9 7"),
        ("lc", Conn::Closed, "11 9 7 11 9 7 11 9 7"),
        ("wlc", Conn::Held, "11 9 7 7 11 7 11 9 7"),
        ("wlc", Conn::Closed, "11 9 7 7 11 7 11 9 7"),
        ("sed", Conn::Held, "7 11 7 11 9 7 7 11 7"),
        ("sed", Conn::Closed, "7 7 7 7 7 7 7 7 7"),
        ("nq", Conn::Held, "11 9 7 7 11 7 7 11 7"),
        ("nq", Conn::Closed, "11 11 11 11 11 11 11 11 11"),
        ("ovf", Conn::Held, "7 7 7 7 11 11 11 9 9 -"),
    ];
    for (name, conn, picks) in cases {
        let mut lab = Lab::new(name);
        lab.sched = least(name, &[], 0);
        lab.add(7, 3).add(9, 1).add(11, 2);
        let n = picks.split(' ').count();
        assert_eq!(lab.picks(n, conn), picks, "{name} {conn:?}");
    }
}

#[test]
fn an_index_that_grows_keeps_its_destinations() {
    // 64 slots to start with: the 65th `-a` doubles the feed and the tree.
    for name in NAMES {
        let mut service = Service::new(name, 0, &[]);
        for k in 0..200 {
            service.add_new(1 + k % 7);
            service
                .run(&Step::Pick { held: k % 3 != 0 })
                .expect("same pick");
        }
        for k in (0..150).rev() {
            service.run(&Step::Remove { dest: k * 7 }).expect("removed");
            service.run(&Step::Pick { held: true }).expect("same pick");
        }
    }
}

#[test]
fn changes_from_other_threads_are_all_taken_in() {
    // Packet threads open and close connections while the scheduler picks. Once they have
    // stopped, the index has seen every change: its pick is the kernel loop's again.
    for name in NAMES {
        let mut service = Service::new(name, 0, &[3, 1, 2, 5, 4, 1, 1, 2]);
        let dests: Vec<Arc<Destination>> = service.dests.to_vec();
        let workers: Vec<_> = (0..3usize)
            .map(|t| {
                let dests = dests.clone();
                std::thread::spawn(move || {
                    for k in 0..20_000usize {
                        let dest = &dests[(k * 7 + t) % dests.len()];
                        dest.bind_conn();
                        dest.conn_became_active(true);
                        if k % 3 != 0 {
                            dest.unbind_conn(true);
                        }
                    }
                })
            })
            .collect();
        let input = from(1, 1);
        while !workers.iter().all(|w| w.is_finished()) {
            let picked = service.sched.schedule(&service.dests, &input);
            assert!(picked.is_none_or(|i| i < dests.len()));
        }
        for w in workers {
            w.join().expect("worker");
        }
        let want = oracle::pick(name, &service.dests);
        assert_eq!(
            service.sched.schedule(&service.dests, &input),
            want,
            "{name}"
        );
    }
}
