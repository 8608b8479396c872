//! Test harness shared by the scheduler tests: a service's destination list, the
//! director's own [`DestList`] (`-a` inserts at the head, `-e` edits in place, `-d`
//! unlinks), plus connections that either stay open ("held", ActiveConn) or close at once
//! ("closed", InActConn), as in the kernel transcripts of
//! `crates/ctl/tests/ipvsadm/data/`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::{create, SchedInput, Scheduler};
use crate::control::{DestParams, SchedFlags};
use crate::dest::Destination;
use crate::dest_list::DestList;
use crate::time::Timestamp;

/// The lab's real servers are 192.168.100.<octet>:80.
pub(crate) fn rs(octet: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 100, octet)
}

/// The lab's VIP.
pub(crate) const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 10);

/// A new connection from 192.168.0.<client>:<sport> to the VIP.
pub(crate) fn from(client: u8, sport: u16) -> SchedInput {
    SchedInput {
        src: IpAddr::V4(Ipv4Addr::new(192, 168, 0, client)),
        sport,
        dst: IpAddr::V4(VIP),
        dport: 80,
        flags: SchedFlags::default(),
        now: Timestamp::ZERO,
    }
}

/// What a connection does after it was scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conn {
    /// Stays ESTABLISHED: counted in ActiveConn.
    Held,
    /// Closes at once and lingers in TIME_WAIT: counted in InActConn.
    Closed,
    /// Not accounted at all (schedulers that ignore counters).
    Untracked,
}

/// One virtual service: its destination list and its scheduler.
pub(crate) struct Lab {
    pub dests: DestList,
    pub sched: Box<dyn Scheduler>,
}

impl Lab {
    /// `ipvsadm -A -s <name>` with no destinations yet.
    pub fn new(name: &str) -> Lab {
        Lab {
            dests: DestList::new(),
            sched: create(name, &[]).expect("known scheduler"),
        }
    }

    /// `ipvsadm -a -r 192.168.100.<octet>:80 -m -w <weight>`.
    pub fn add(&mut self, octet: u8, weight: i32) -> &mut Lab {
        self.add_dest(Arc::new(Destination::for_test(rs(octet), 80, weight)))
    }

    /// `-a` with a destination built by the test (thresholds, IPv6, a resurrected one).
    pub fn add_dest(&mut self, dest: Arc<Destination>) -> &mut Lab {
        self.dests.add(dest, self.sched.as_mut());
        self
    }

    /// `ipvsadm -e -r 192.168.100.<octet>:80 -m -w <weight>` (clears thresholds, as `-e` does).
    pub fn edit(&mut self, octet: u8, weight: i32) -> &mut Lab {
        let params = DestParams {
            weight,
            ..DestParams::default()
        };
        let index = self.index(octet);
        self.dests.edit(index, &params, self.sched.as_mut());
        self
    }

    /// `ipvsadm -d -r 192.168.100.<octet>:80`; returns the unlinked destination, which
    /// keeps its counters (the kernel's trash).
    pub fn delete(&mut self, octet: u8) -> Arc<Destination> {
        let index = self.index(octet);
        self.dests.remove(index, self.sched.as_mut())
    }

    /// `ipvsadm -E -s <name>` with a different scheduler: init_service on the current list.
    pub fn switch(&mut self, name: &str) -> &mut Lab {
        self.sched = create(name, &self.dests).expect("known scheduler");
        self
    }

    /// The destination 192.168.100.<octet>.
    pub fn dest(&self, octet: u8) -> &Arc<Destination> {
        &self.dests[self.index(octet)]
    }

    fn index(&self, octet: u8) -> usize {
        self.dests
            .iter()
            .position(|d| d.ipv4() == Some(rs(octet)))
            .expect("destination in the list")
    }

    /// Schedules one connection and accounts it as the kernel would; the last octet of the
    /// real server, or `None` for "no destination available".
    pub fn connect(&mut self, input: &SchedInput, conn: Conn) -> Option<u8> {
        let index = self.sched.schedule(&self.dests, input)?;
        let dest = &self.dests[index];
        match conn {
            // ip_vs_bind_dest counts a new entry inactive (and runs the threshold check);
            // the SYN's transition to SYN_RECV then moves it to active.
            Conn::Held => {
                dest.bind_conn();
                dest.conn_became_active(true);
            }
            Conn::Closed => dest.bind_conn(),
            Conn::Untracked => {}
        }
        Some(dest.ipv4().expect("IPv4 lab").octets()[3])
    }

    /// `n` connections from 192.168.0.101 with consecutive source ports, as a `PICKS` line:
    /// last octets separated by spaces, `-` for a refused connection.
    pub fn picks(&mut self, n: usize, conn: Conn) -> String {
        let inputs: Vec<SchedInput> = (0..n).map(|k| from(101, 20000 + k as u16)).collect();
        self.picks_for(&inputs, conn)
    }

    /// One connection per input, as a `PICKS` line.
    pub fn picks_for(&mut self, inputs: &[SchedInput], conn: Conn) -> String {
        inputs
            .iter()
            .map(|input| match self.connect(input, conn) {
                Some(octet) => octet.to_string(),
                None => "-".to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}
