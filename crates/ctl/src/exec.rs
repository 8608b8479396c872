//! Runs a parsed command against the director and writes what ipvsadm would print, with the
//! status that decides how a `-R` restore goes on (see [`LineStatus`]).

use masq_core::control::{Control, ControlError, DestParams, FwdMethod, TunnelKind};

use crate::errors::{self, Op};
use crate::format;
use crate::grammar::{self, CliError, CliErrorKind, Command, ListWhat};
use crate::help;
use crate::names::Names;
use crate::restore::{self, LineStatus};
use crate::Outcome;

/// masq forwards by NAT (-m), direct routing (-g, ipvsadm's default) and IPIP tunnelling
/// (-i, `--tun-type ipip`, ipvsadm's default type); the other tunnel types are refused
/// with this.
pub const NO_TUNNEL_TYPE: &str =
    "masq tunnels by IPIP only (yet): --tun-type gue and gre are not supported; use --tun-type ipip";

/// What one invocation needs besides its arguments.
pub(crate) struct Ctx<'a> {
    pub program: &'a str,
    pub stdin: &'a str,
    pub names: &'a dyn Names,
    pub director: &'a dyn Control,
}

fn line(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}

/// Parse and run one argument vector. `reading_stdin` is true for the lines of a restore.
pub(crate) fn execute(
    args: &[String],
    ctx: &Ctx,
    out: &mut Outcome,
    reading_stdin: bool,
) -> LineStatus {
    match grammar::parse(ctx.program, args, ctx.names) {
        Ok(cmd) => run_command(cmd, ctx, out, reading_stdin),
        Err(e) => cli_error(e, out),
    }
}

fn cli_error(e: CliError, out: &mut Outcome) -> LineStatus {
    line(&mut out.stderr, &e.message);
    match e.kind {
        CliErrorKind::Popt => LineStatus::Continue(e.code),
        CliErrorKind::TryHelp | CliErrorKind::Invalid => LineStatus::Exit(e.code),
    }
}

/// A director call: its error is printed and returned as 255, and a restore goes on.
fn call(out: &mut Outcome, op: Op, result: Result<(), ControlError>) -> LineStatus {
    match result {
        Ok(()) => LineStatus::Continue(0),
        Err(e) => {
            line(&mut out.stderr, &errors::message(op, &e));
            LineStatus::Continue(255)
        }
    }
}

/// Whether masq forwards a destination with these parameters: every method but a tunnel
/// of a type other than IPIP.
fn forwards(params: &DestParams) -> bool {
    params.fwd != FwdMethod::Tunnel || params.tunnel == TunnelKind::Ipip
}

/// A refusal of masq's own, reported like a director error.
fn refuse(out: &mut Outcome, text: &str) -> LineStatus {
    line(&mut out.stderr, text);
    LineStatus::Continue(255)
}

fn run_command(cmd: Command, ctx: &Ctx, out: &mut Outcome, reading_stdin: bool) -> LineStatus {
    let d = ctx.director;
    match cmd {
        Command::Help => {
            out.stdout.push_str(&help::usage(ctx.program));
            LineStatus::Exit(0)
        }
        Command::Version => {
            out.stdout.push_str(help::VERSION);
            LineStatus::Exit(0)
        }
        Command::Restore => {
            if reading_stdin {
                // -R inside -R: ipvsadm refuses to recurse.
                return cli_error(CliError::try_help(ctx.program), out);
            }
            // restore::drive's loop, keeping line numbers: ipvsadm prints only each line's
            // own messages, so the failing lines are kept aside for the daemon's log.
            let mut result = LineStatus::Continue(0);
            for (n, words) in restore::Lines::new(ctx.stdin).enumerate() {
                if words.is_empty() {
                    continue;
                }
                let status = execute(&words, ctx, out, true);
                let (LineStatus::Continue(code) | LineStatus::Exit(code)) = status;
                if code != 0 {
                    out.restore_failures.push(format!(
                        "line {}: `{}` (exit {code})",
                        n + 1,
                        words.join(" ")
                    ));
                }
                match status {
                    LineStatus::Continue(_) => result = status,
                    LineStatus::Exit(_) => return status,
                }
            }
            result
        }
        Command::List(list) => {
            let f = &list.format;
            match list.what {
                ListWhat::All => {
                    let text = format::list_all(&d.services(), f, ctx.names);
                    out.stdout.push_str(&text);
                }
                ListWhat::Service(key) => {
                    let services = d.services();
                    let Some(svc) = services.iter().find(|s| s.key == key) else {
                        line(
                            &mut out.stderr,
                            &errors::message(Op::GetService, &ControlError::NoService),
                        );
                        return LineStatus::Exit(1);
                    };
                    out.stdout
                        .push_str(&format::list_service(svc, f, ctx.names));
                }
                ListWhat::Connections => {
                    let text = format::connections(
                        &d.connections(),
                        f.numeric,
                        f.persistent_conn,
                        ctx.names,
                    );
                    out.stdout.push_str(&text);
                }
                ListWhat::Timeouts => out.stdout.push_str(&format::timeouts(&d.timeouts())),
                ListWhat::Daemons => out.stdout.push_str(&format::daemons(&d.daemons())),
            }
            LineStatus::Continue(0)
        }
        Command::Save { numeric } => {
            out.stdout
                .push_str(&format::save(&d.services(), numeric, ctx.names));
            LineStatus::Continue(0)
        }
        Command::Flush => call(out, Op::Flush, d.flush()),
        Command::AddService { key, params } => {
            call(out, Op::AddService, d.add_service(key, params))
        }
        Command::EditService { key, params } => {
            call(out, Op::EditService, d.edit_service(key, params))
        }
        Command::DeleteService(key) => call(out, Op::DeleteService, d.delete_service(key)),
        Command::Zero(key) => call(out, Op::Zero, d.zero(key)),
        Command::AddDest {
            service,
            dest,
            params,
        } => {
            if !forwards(&params) {
                return refuse(out, NO_TUNNEL_TYPE);
            }
            call(out, Op::AddDest, d.add_dest(service, dest, params))
        }
        Command::EditDest {
            service,
            dest,
            params,
        } => {
            if !forwards(&params) {
                return refuse(out, NO_TUNNEL_TYPE);
            }
            call(out, Op::EditDest, d.edit_dest(service, dest, params))
        }
        Command::DeleteDest { service, dest } => {
            call(out, Op::DeleteDest, d.delete_dest(service, dest))
        }
        Command::SetTimeouts(t) => call(out, Op::SetTimeouts, d.set_timeouts(t)),
        Command::StartDaemon(opts) => call(out, Op::StartDaemon, d.start_daemon(opts)),
        Command::StopDaemon(opts) => call(out, Op::StopDaemon, d.stop_daemon(opts.role)),
    }
}
