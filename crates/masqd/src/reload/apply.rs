//! A reload's plan carried out through the director's control interface, with the health
//! checker kept in the picture.
//!
//! A real server the checker holds out of service (quiesced or removed) stays out: the new
//! parameters become what the checker brings it back with. A server the file no longer has
//! loses the checker's memory, so the checker never brings it back. Each operation is
//! logged; one that fails (a `masqadm` change racing the reload) is logged and the others
//! still run.

use std::collections::HashMap;

use masq_core::control::{Control, ControlError, DestKey, DestParams, ServiceKey};

use super::plan::{Change, Leaving, Plan};
use crate::health::{Health, HealthMap};

/// How many operations of a plan the director took and refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub done: usize,
    pub failed: usize,
}

/// Applies `plan` through `control`, keeping `health` consistent with it.
pub fn apply(plan: &Plan, control: &dyn Control, health: &HealthMap) -> Applied {
    // Held across the plan, so a health round cannot take a server out between the
    // moment its parameters are chosen and the moment they are set.
    let mut checked = health.lock().unwrap_or_else(|e| e.into_inner());
    let mut applied = Applied::default();
    for change in &plan.changes {
        let result = carry_out(change, control, &mut checked);
        match result {
            Ok(Held::No) => {
                applied.done += 1;
                tracing::info!("reload: {change}");
            }
            Ok(Held::ByHealthChecks) => {
                applied.done += 1;
                tracing::info!(
                    "reload: {change} (kept out of service by the health checks until it recovers)"
                );
            }
            Err(e) => {
                applied.failed += 1;
                tracing::warn!("reload: {change}: failed: {e}");
            }
        }
    }
    for leaving in &plan.leaving {
        match *leaving {
            Leaving::Server(service, server) => {
                checked.remove(&(service, server));
            }
            Leaving::Service(service) => checked.retain(|(s, _), _| *s != service),
        }
    }
    applied
}

/// One change, through `control`; a real server's parameters through the checker's
/// memory in `checked`.
fn carry_out(
    change: &Change,
    control: &dyn Control,
    checked: &mut HashMap<(ServiceKey, DestKey), Health>,
) -> Result<Held, ControlError> {
    let done = |result: Result<(), ControlError>| result.map(|()| Held::No);
    match change {
        Change::AddService(service, params) => done(control.add_service(*service, params.clone())),
        Change::EditService { service, to, .. } => done(control.edit_service(*service, to.clone())),
        Change::AddServer(service, server, params) => {
            done(control.add_dest(*service, *server, *params))
        }
        Change::EditServer {
            service,
            server,
            to: params,
            ..
        } => edit_server(control, checked, *service, *server, *params),
        // Out of service either way: whether the checker holds it too does not matter
        // any more (it forgets leaving servers).
        Change::QuiesceServer(service, server, params) => {
            edit_server(control, checked, *service, *server, *params).map(|_| Held::No)
        }
        Change::SetTimeouts(timeouts) => done(control.set_timeouts(*timeouts)),
    }
}

/// Whether an edit left a real server out of service for the health checks.
enum Held {
    No,
    ByHealthChecks,
}

/// Edits a real server to `params`, unless the checker holds it out of service: then the
/// checker keeps `params` to bring it back with, and the director keeps the server
/// quiesced (with the other parameters of `params`) or removed.
fn edit_server(
    control: &dyn Control,
    checked: &mut HashMap<(ServiceKey, DestKey), Health>,
    service: ServiceKey,
    server: DestKey,
    params: DestParams,
) -> Result<Held, ControlError> {
    let now = checked
        .get_mut(&(service, server))
        .map_or(Some(params), |h| h.reconfigure(params));
    match now {
        Some(now) if now == params => control.edit_dest(service, server, now).map(|()| Held::No),
        Some(now) => control
            .edit_dest(service, server, now)
            .map(|()| Held::ByHealthChecks),
        None => Ok(Held::ByHealthChecks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::plan::{plan, Rules};
    use crate::reload::tests::{director, rules};
    use masq_core::Timestamp;
    use masq_ctl::{Env, NumericOnly};

    /// `-S -n` of `control`, its lines sorted.
    fn saved(control: &dyn Control) -> Vec<String> {
        let env = Env {
            program: "masqd",
            stdin: None,
            names: &NumericOnly,
        };
        let text = masq_ctl::run(&["-S".to_string(), "-n".to_string()], &env, control).stdout;
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines.sort_unstable();
        lines
    }

    #[test]
    fn a_plan_applied_gives_the_files_rules_plus_what_is_leaving_at_weight_0() {
        let live = director();
        let control = live.control(Timestamp(0));
        let start = "-A -t 192.168.0.10:80 -s rr\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m\n\
                     -a -t 192.168.0.10:80 -r 192.168.100.9 -m\n\
                     -A -t 192.168.0.10:81 -s rr\n-a -t 192.168.0.10:81 -r 192.168.100.9:80 -m\n";
        crate::rules::apply_text(start, "start", &control).unwrap();
        let file = "-A -t 192.168.0.10:80 -s wrr\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m -w 3\n\
                    -A -t 192.168.0.10:82 -s lc\n-a -t 192.168.0.10:82 -r 192.168.100.7 -m\n\
                    --set 60 30 20\n";
        let desired = rules(file);
        let p = plan(&Rules::of(&control), &desired);
        let applied = apply(&p, &control, &HealthMap::default());
        assert_eq!(
            applied,
            Applied {
                done: p.changes.len(),
                failed: 0
            }
        );

        let fresh = director();
        let fresh_control = fresh.control(Timestamp(0));
        crate::rules::apply_text(file, "file", &fresh_control).unwrap();
        let mut expected = saved(&fresh_control);
        expected.extend(
            [
                "-a -t 192.168.0.10:80 -r 192.168.100.9:80 -m -w 0",
                "-A -t 192.168.0.10:81 -s rr",
                "-a -t 192.168.0.10:81 -r 192.168.100.9:80 -m -w 0",
            ]
            .map(String::from),
        );
        expected.sort_unstable();
        assert_eq!(saved(&control), expected);
        assert_eq!(control.timeouts().tcp, 60);

        let again = plan(&Rules::of(&control), &desired);
        assert!(again.is_empty(), "{:?}", again.changes);
        assert_eq!(again.leaving, p.leaving);
    }

    #[test]
    fn a_refused_change_is_counted_and_the_others_still_run() {
        let live = director();
        let control = live.control(Timestamp(0));
        let p = plan(
            &Rules::of(&control),
            &rules("-A -t 192.168.0.10:80 -s rr\n-a -t 192.168.0.10:80 -r 192.168.100.7 -m\n"),
        );
        let Change::AddService(service, _) = p.changes[0] else {
            panic!("{:?}", p.changes)
        };
        // Someone adds the service between the plan and its application.
        control.add_service(service, Default::default()).unwrap();
        let applied = apply(&p, &control, &HealthMap::default());
        assert_eq!(applied, Applied { done: 1, failed: 1 });
        assert_eq!(control.services()[0].dests.len(), 1);
    }
}
