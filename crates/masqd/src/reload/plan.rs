//! What a reload changes: the difference between the rules a file asks for and the rules the
//! director holds, as a list of control operations. Pure: it reads two sets of rules and
//! touches nothing.
//!
//! Invariants of a [`Plan`]:
//! - nothing the director holds is deleted here: what the file no longer has is quiesced
//!   (weight 0) and listed in [`Plan::leaving`], to be deleted once it holds no open
//!   connection (`drain.rs`); a deleted real server's connections would lose their packets
//!   (the director drops them, as the kernel does with `expire_nodest_conn=0`);
//! - what is in both is edited in place, so its connections, counters and scheduler state
//!   stay (a scheduler changed by name starts afresh, as `-E` does);
//! - rules that are equal produce no change at all, so an unchanged file gives an empty plan;
//! - new real servers are added oldest first, so that the director's list (newest first)
//!   orders them as a fresh start with the file would.

use std::fmt;
use std::net::SocketAddr;

use masq_core::control::{
    Control, DestKey, DestParams, DestView, ServiceKey, ServiceParams, ServiceView, Timeouts,
};

/// Rules as a set: the services with their real servers, and the connection timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub services: Vec<ServiceView>,
    pub timeouts: Timeouts,
}

impl Rules {
    /// What `control` holds now.
    pub fn of(control: &dyn Control) -> Rules {
        Rules {
            services: control.services(),
            timeouts: control.timeouts(),
        }
    }
}

/// One control operation of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    AddService(ServiceKey, ServiceParams),
    EditService {
        service: ServiceKey,
        from: ServiceParams,
        to: ServiceParams,
    },
    AddServer(ServiceKey, DestKey, DestParams),
    EditServer {
        service: ServiceKey,
        server: DestKey,
        from: DestParams,
        to: DestParams,
    },
    /// Weight 0 for a real server the file no longer has, or whose service it no longer
    /// has: established connections carry on, new ones go elsewhere.
    QuiesceServer(ServiceKey, DestKey, DestParams),
    SetTimeouts(Timeouts),
}

/// A rule the file no longer has, waiting for its connections to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Leaving {
    /// A whole service: deleted once none of its real servers holds a connection.
    Service(ServiceKey),
    /// A real server of a service the file still has.
    Server(ServiceKey, DestKey),
}

/// Everything one reload does, in the order it is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Every rule the director holds that the file does not (those quiesced by an earlier
    /// reload included), sorted.
    pub leaving: Vec<Leaving>,
}

/// The plan that turns `current` into `desired`.
pub fn plan(current: &Rules, desired: &Rules) -> Plan {
    let mut plan = Plan::default();
    for want in &desired.services {
        match current.services.iter().find(|s| s.key == want.key) {
            None => {
                plan.changes
                    .push(Change::AddService(want.key, want.params.clone()));
                add_servers(&mut plan, want.key, want.dests.iter());
            }
            Some(have) => reconcile_service(&mut plan, have, want),
        }
    }
    for have in &current.services {
        if !desired.services.iter().any(|s| s.key == have.key) {
            for server in &have.dests {
                quiesce(&mut plan, have.key, server);
            }
            plan.leaving.push(Leaving::Service(have.key));
        }
    }
    if current.timeouts != desired.timeouts {
        plan.changes.push(Change::SetTimeouts(desired.timeouts));
    }
    plan.leaving.sort_unstable();
    plan
}

/// A service both have: its parameters, then its real servers.
fn reconcile_service(plan: &mut Plan, have: &ServiceView, want: &ServiceView) {
    if have.params != want.params {
        plan.changes.push(Change::EditService {
            service: want.key,
            from: have.params.clone(),
            to: want.params.clone(),
        });
    }
    let mut new = Vec::new();
    for server in &want.dests {
        match have.dests.iter().find(|d| d.key == server.key) {
            None => new.push(server),
            Some(old) if old.params != server.params => plan.changes.push(Change::EditServer {
                service: want.key,
                server: server.key,
                from: old.params,
                to: server.params,
            }),
            Some(_) => {}
        }
    }
    add_servers(plan, want.key, new.into_iter());
    for server in &have.dests {
        if !want.dests.iter().any(|d| d.key == server.key) {
            quiesce(plan, have.key, server);
            plan.leaving.push(Leaving::Server(have.key, server.key));
        }
    }
}

/// `servers` in the director's order (newest first), added oldest first.
fn add_servers<'a>(
    plan: &mut Plan,
    service: ServiceKey,
    servers: impl DoubleEndedIterator<Item = &'a DestView>,
) {
    for server in servers.rev() {
        plan.changes
            .push(Change::AddServer(service, server.key, server.params));
    }
}

fn quiesce(plan: &mut Plan, service: ServiceKey, server: &DestView) {
    if server.params.weight != 0 {
        plan.changes.push(Change::QuiesceServer(
            service,
            server.key,
            DestParams {
                weight: 0,
                ..server.params
            },
        ));
    }
}

impl Plan {
    /// Whether the reload changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A real server as `-L -n` names it.
pub fn server_name(server: &DestKey) -> SocketAddr {
    SocketAddr::new(server.addr, server.port)
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddService(service, params) => {
                write!(
                    f,
                    "service {service} added (scheduler {})",
                    params.scheduler
                )
            }
            Change::EditService { service, from, to } if from.scheduler != to.scheduler => {
                write!(
                    f,
                    "service {service}: scheduler {} -> {}",
                    from.scheduler, to.scheduler
                )
            }
            Change::EditService { service, .. } => {
                write!(f, "service {service}: parameters edited")
            }
            Change::AddServer(service, server, params) => write!(
                f,
                "real server {} added to {service} (weight {})",
                server_name(server),
                params.weight
            ),
            // Only the weight changed.
            Change::EditServer {
                service,
                server,
                from,
                to,
            } if DestParams {
                weight: to.weight,
                ..*from
            } == *to =>
            {
                write!(
                    f,
                    "real server {} of {service}: weight {} -> {}",
                    server_name(server),
                    from.weight,
                    to.weight
                )
            }
            Change::EditServer {
                service, server, ..
            } => write!(
                f,
                "real server {} of {service}: parameters edited",
                server_name(server)
            ),
            Change::QuiesceServer(service, server, _) => write!(
                f,
                "real server {} of {service} quiesced (weight 0), deleted once its connections end",
                server_name(server)
            ),
            Change::SetTimeouts(t) => write!(
                f,
                "timeouts (tcp tcpfin udp) set to {} {} {}",
                t.tcp, t.tcp_fin, t.udp
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::tests::{rs, rules, service as key};

    const VIP80: &str = "-A -t 192.168.0.10:80 -s rr";

    fn plan_of(current: &str, desired: &str) -> Plan {
        plan(&rules(current), &rules(desired))
    }

    fn is_edit_of(change: &Change, server: DestKey, weight: i32) -> bool {
        matches!(change, Change::EditServer { server: s, to, .. } if *s == server && to.weight == weight)
    }

    #[test]
    fn the_same_rules_give_an_empty_plan() {
        let text = format!(
            "{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m -w 3\n\
             -a -t 192.168.0.10:80 -r 192.168.100.9 -m\n--set 60 30 20\n"
        );
        assert_eq!(plan_of(&text, &text), Plan::default());
    }

    #[test]
    fn a_new_service_comes_with_its_servers_in_the_files_order() {
        let p = plan_of(
            "",
            &format!(
                "{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m\n\
                 -a -t 192.168.0.10:80 -r 192.168.100.9 -m -w 2\n"
            ),
        );
        assert!(
            matches!(&p.changes[0], Change::AddService(k, params) if *k == key(80) && params.scheduler == "rr")
        );
        assert!(matches!(p.changes[1], Change::AddServer(k, d, _) if k == key(80) && d == rs(7)));
        assert!(
            matches!(p.changes[2], Change::AddServer(_, d, params) if d == rs(9) && params.weight == 2)
        );
        assert_eq!(p.changes.len(), 3);
        assert!(p.leaving.is_empty());
    }

    #[test]
    fn a_new_server_of_a_kept_service_is_added_and_the_others_untouched() {
        let p = plan_of(
            &format!("{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m\n"),
            &format!(
                "{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m\n\
                 -a -t 192.168.0.10:80 -r 192.168.100.9 -m\n"
            ),
        );
        assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
        assert!(matches!(p.changes[0], Change::AddServer(k, d, _) if k == key(80) && d == rs(9)));
    }

    #[test]
    fn scheduler_and_weights_are_edited_in_place() {
        let p = plan_of(
            &format!(
                "{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m\n\
                 -a -t 192.168.0.10:80 -r 192.168.100.9 -m\n"
            ),
            "-A -t 192.168.0.10:80 -s wrr\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m -w 3\n\
             -a -t 192.168.0.10:80 -r 192.168.100.9 -m\n",
        );
        assert_eq!(p.changes.len(), 2, "{:?}", p.changes);
        assert!(
            matches!(&p.changes[0], Change::EditService { from, to, .. } if from.scheduler == "rr" && to.scheduler == "wrr")
        );
        assert!(is_edit_of(&p.changes[1], rs(7), 3));
        assert_eq!(
            p.changes[0].to_string(),
            "service TCP 192.168.0.10:80: scheduler rr -> wrr"
        );
        assert_eq!(
            p.changes[1].to_string(),
            "real server 192.168.100.7:80 of TCP 192.168.0.10:80: weight 1 -> 3"
        );
    }

    #[test]
    fn other_parameters_are_edited_too() {
        let p = plan_of(
            &format!("{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m\n"),
            "-A -t 192.168.0.10:80 -s rr -p 300\n\
             -a -t 192.168.0.10:80 -r 192.168.100.7 -m -x 100 -y 50\n",
        );
        assert!(
            matches!(&p.changes[0], Change::EditService { to, .. } if to.persistent == Some(300))
        );
        assert!(
            matches!(&p.changes[1], Change::EditServer { to, .. } if to.u_threshold == 100 && to.l_threshold == 50)
        );
        assert_eq!(
            p.changes[1].to_string(),
            "real server 192.168.100.7:80 of TCP 192.168.0.10:80: parameters edited"
        );
    }

    #[test]
    fn a_removed_server_is_quiesced_and_leaves() {
        let p = plan_of(
            &format!(
                "{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m -w 3\n\
                 -a -t 192.168.0.10:80 -r 192.168.100.9 -m\n"
            ),
            &format!("{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.9 -m\n"),
        );
        assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
        assert!(
            matches!(p.changes[0], Change::QuiesceServer(k, d, params) if k == key(80) && d == rs(7) && params.weight == 0)
        );
        assert_eq!(p.leaving, vec![Leaving::Server(key(80), rs(7))]);
    }

    #[test]
    fn a_server_already_quiesced_still_leaves_without_a_change() {
        let p = plan_of(
            &format!("{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m -w 0\n"),
            VIP80,
        );
        assert!(p.is_empty(), "{:?}", p.changes);
        assert_eq!(p.leaving, vec![Leaving::Server(key(80), rs(7))]);
    }

    #[test]
    fn a_removed_service_quiesces_all_its_servers_and_leaves_whole() {
        let p = plan_of(
            &format!(
                "{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m\n\
                 -A -t 192.168.0.10:81 -s wlc\n-a -t 192.168.0.10:81 -r 192.168.100.7:80 -m\n\
                 -a -t 192.168.0.10:81 -r 192.168.100.9:80 -m -w 0\n"
            ),
            &format!("{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m\n"),
        );
        assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
        assert!(
            matches!(p.changes[0], Change::QuiesceServer(k, d, _) if k == key(81) && d == rs(7))
        );
        assert_eq!(p.leaving, vec![Leaving::Service(key(81))]);
    }

    #[test]
    fn a_server_back_in_the_file_is_edited_back_and_no_longer_leaves() {
        let p = plan_of(
            &format!("{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m -w 0\n"),
            &format!("{VIP80}\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m -w 2\n"),
        );
        assert_eq!(p.changes.len(), 1);
        assert!(is_edit_of(&p.changes[0], rs(7), 2));
        assert!(p.leaving.is_empty());
    }

    #[test]
    fn timeouts_follow_the_file() {
        let p = plan_of(VIP80, &format!("{VIP80}\n--set 60 30 20\n"));
        assert_eq!(
            p.changes,
            vec![Change::SetTimeouts(Timeouts {
                tcp: 60,
                tcp_fin: 30,
                udp: 20
            })]
        );
        let back = plan_of(&format!("{VIP80}\n--set 60 30 20\n"), VIP80);
        assert_eq!(back.changes, vec![Change::SetTimeouts(Timeouts::default())]);
    }
}
