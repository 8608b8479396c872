//! Rules that left the file, deleted once nothing uses them.
//!
//! A real server (or a whole service) the file no longer has stays in the director at
//! weight 0 while it holds an open connection: deleting it would drop that connection's
//! packets. A connection is open until both sides have closed it: entries in TIME_WAIT or
//! CLOSE only wait out their timers (two minutes for TIME_WAIT), and what may still come
//! for them — a last ACK retransmitted — is not worth keeping a removed server for.
//! Persistence templates do not hold a server either: deleting it invalidates them, and
//! their clients are scheduled afresh, as the kernel does.
//!
//! The counters in the listing tell most cases apart for free (an ESTABLISHED connection
//! is active, no connection at all is 0 + 0); only a server with inactive connections
//! alone needs the connection table read, once per sweep.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::net::IpAddr;

use masq_core::control::{ConnView, DestKey, DestView, ServiceKey, ServiceView};

use super::plan::Leaving;

/// What a sweep does with one leaving rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Still holds an open connection.
    Wait,
    /// Holds none: delete it now.
    Delete,
    /// The director no longer has it (deleted by the operator or a health check).
    Gone,
    /// Someone gave it a weight again since the reload: it stays, as they asked.
    Kept,
}

/// Which real servers hold an open connection, read from the connection table at most
/// once (and only when the counters cannot tell).
pub struct OpenConnections<'a> {
    list: &'a dyn Fn() -> Vec<ConnView>,
    servers: OnceCell<HashSet<(IpAddr, u16)>>,
}

impl<'a> OpenConnections<'a> {
    /// Over the connection entries `list` returns (`Control::connections`).
    pub fn new(list: &'a dyn Fn() -> Vec<ConnView>) -> OpenConnections<'a> {
        OpenConnections {
            list,
            servers: OnceCell::new(),
        }
    }

    /// Whether `server` holds a connection that is not closed yet. A real server listed
    /// in several services counts its connections of all of them: it waits longer,
    /// never less.
    fn held_by(&self, server: &DestView) -> bool {
        if server.active_conns > 0 {
            return true;
        }
        if server.inact_conns == 0 {
            return false;
        }
        self.servers
            .get_or_init(|| {
                (self.list)()
                    .iter()
                    .filter(|c| !c.template && !matches!(c.state, "TIME_WAIT" | "CLOSE"))
                    .map(|c| c.dest)
                    .collect()
            })
            .contains(&(server.key.addr, server.key.port))
    }
}

/// What to do with `leaving` given the director's `services` now.
pub fn step(leaving: Leaving, services: &[ServiceView], open: &OpenConnections) -> Step {
    let find = |key: ServiceKey| services.iter().find(|s| s.key == key);
    match leaving {
        Leaving::Service(key) => {
            let Some(service) = find(key) else {
                return Step::Gone;
            };
            if service.dests.iter().any(|d| d.params.weight != 0) {
                Step::Kept
            } else if service.dests.iter().any(|d| open.held_by(d)) {
                Step::Wait
            } else {
                Step::Delete
            }
        }
        Leaving::Server(key, server) => {
            let Some(server) = find(key).and_then(|s| dest(s, server)) else {
                return Step::Gone;
            };
            if server.params.weight != 0 {
                Step::Kept
            } else if open.held_by(server) {
                Step::Wait
            } else {
                Step::Delete
            }
        }
    }
}

fn dest(service: &ServiceView, key: DestKey) -> Option<&DestView> {
    service.dests.iter().find(|d| d.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::tests::{rs, service as key};
    use masq_core::control::{DestParams, FwdMethod, ServiceParams};

    fn server(last: u8, weight: i32, active: u32, inactive: u32) -> DestView {
        DestView {
            key: rs(last),
            params: DestParams {
                fwd: FwdMethod::Masq,
                weight,
                ..DestParams::default()
            },
            active_conns: active,
            inact_conns: inactive,
            persist_conns: 0,
            stats: Default::default(),
            rate: Default::default(),
        }
    }

    fn service(port: u16, dests: Vec<DestView>) -> ServiceView {
        ServiceView {
            key: key(port),
            params: ServiceParams::default(),
            stats: Default::default(),
            rate: Default::default(),
            dests,
        }
    }

    fn conn(last: u8, state: &'static str) -> ConnView {
        ConnView {
            protocol: "TCP",
            client: ([192, 168, 0, 101].into(), 40000),
            virtual_: ([192, 168, 0, 10].into(), 80),
            dest: ([192, 168, 100, last].into(), 80),
            state,
            expires_secs: 100,
            template: false,
        }
    }

    fn never_read() -> Vec<ConnView> {
        panic!("the counters were enough")
    }

    /// The step of each of `items`, given `services` and the connections `list` returns.
    fn steps(
        items: &[Leaving],
        services: &[ServiceView],
        list: &dyn Fn() -> Vec<ConnView>,
    ) -> Vec<Step> {
        let open = OpenConnections::new(list);
        items.iter().map(|&i| step(i, services, &open)).collect()
    }

    /// Real server .`last` of the service on :80, leaving.
    fn of_80(last: u8) -> Leaving {
        Leaving::Server(key(80), rs(last))
    }

    #[test]
    fn the_counters_decide_when_they_can() {
        let services = [service(80, vec![server(7, 0, 1, 0), server(9, 0, 0, 0)])];
        assert_eq!(
            steps(
                &[of_80(7), of_80(9), Leaving::Service(key(80))],
                &services,
                &never_read
            ),
            [Step::Wait, Step::Delete, Step::Wait]
        );
    }

    #[test]
    fn closed_connections_do_not_hold_a_server_and_half_closed_ones_do() {
        let list = || {
            vec![
                conn(7, "TIME_WAIT"),
                conn(7, "CLOSE"),
                conn(9, "TIME_WAIT"),
                conn(9, "FIN_WAIT"),
            ]
        };
        let services = [service(80, vec![server(7, 0, 0, 2), server(9, 0, 0, 2)])];
        assert_eq!(
            steps(&[of_80(7), of_80(9)], &services, &list),
            [Step::Delete, Step::Wait]
        );
    }

    #[test]
    fn the_connection_table_is_read_once_per_sweep() {
        let reads = std::cell::Cell::new(0);
        let list = || {
            reads.set(reads.get() + 1);
            vec![conn(7, "SYN_RECV"), conn(9, "UDP")]
        };
        let services = [service(80, vec![server(7, 0, 0, 1), server(9, 0, 0, 1)])];
        assert_eq!(
            steps(&[of_80(7), of_80(9)], &services, &list),
            [Step::Wait, Step::Wait]
        );
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn a_service_leaves_when_none_of_its_servers_holds_a_connection() {
        let service_81 = Leaving::Service(key(81));
        let idle = [service(81, vec![server(7, 0, 0, 0), server(9, 0, 0, 0)])];
        assert_eq!(steps(&[service_81], &idle, &never_read), [Step::Delete]);
        let empty = [service(81, vec![])];
        assert_eq!(steps(&[service_81], &empty, &never_read), [Step::Delete]);
    }

    #[test]
    fn what_someone_else_deleted_or_weighted_again_is_let_go() {
        let services = [service(80, vec![server(7, 2, 5, 0)])];
        assert_eq!(
            steps(
                &[
                    of_80(7),
                    Leaving::Service(key(80)),
                    of_80(9),
                    Leaving::Service(key(81))
                ],
                &services,
                &never_read
            ),
            [Step::Kept, Step::Kept, Step::Gone, Step::Gone]
        );
    }
}
