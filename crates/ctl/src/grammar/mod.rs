//! The ipvsadm 1.31 command line: an argument vector in, a typed [`Command`] or a
//! [`CliError`] (message and exit code) out, decided exactly as ipvsadm decides.
//!
//! The order of checks is part of the behaviour: options are handled in
//! argv order (value errors and duplicates fail at once), then popt's own errors, then the
//! `--set` values and leftovers, then `-b` against the scheduler, then the legality matrix
//! (the `matrix` module), then the per-command checks (zero port, one-packet, real-server port forcing,
//! address family, tunnel options) and the list conflict rule.
//!
//! clap is deliberately not used: ipvsadm's quirks are popt's (see the `popt` module), and its messages
//! name popt's view of the argument vector, which clap cannot reproduce.

mod matrix;
mod options;
mod popt;
mod values;

use masq_core::control::{
    DestKey, DestParams, FwdMethod, SchedFlags, ServiceKey, ServiceParams, Timeouts, TunnelCsum,
    TunnelKind,
};

use crate::format::ListFormat;
use crate::names::Names;
use matrix::{opt, Cmd, TunType};
use options::{apply_option, inv, Draft, Id, OPTIONS};
use popt::{Next, Popt};
use values::{parse_sched_flags, parse_timeout};

/// One parsed ipvsadm invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`.
    AddService {
        /// The virtual service (`-t`/`-u`/`--sctp-service`/`-f`).
        key: ServiceKey,
        /// Scheduler, persistence and flags, with ipvsadm's defaults filled in.
        params: ServiceParams,
    },
    /// `-E` (a full replacement: omitted options are sent as their defaults).
    EditService {
        /// The virtual service.
        key: ServiceKey,
        /// Everything the service will have afterwards.
        params: ServiceParams,
    },
    /// `-D`.
    DeleteService(ServiceKey),
    /// `-C`.
    Flush,
    /// `-L` / `-l` (and no arguments at all).
    List(ListCommand),
    /// `-a`.
    AddDest {
        /// The virtual service.
        service: ServiceKey,
        /// The real server, its port already forced to the service's for `-g`/`-i`.
        dest: DestKey,
        /// Forwarding method (ipvsadm's default is `-g`), weight, thresholds, tunnel.
        params: DestParams,
    },
    /// `-e` (a full replacement, like `-E`).
    EditDest {
        /// The virtual service.
        service: ServiceKey,
        /// The real server, matched by address and port.
        dest: DestKey,
        /// Everything the real server will have afterwards.
        params: DestParams,
    },
    /// `-d`.
    DeleteDest {
        /// The virtual service.
        service: ServiceKey,
        /// The real server, matched by address and port.
        dest: DestKey,
    },
    /// `--set tcp tcpfin udp`.
    SetTimeouts(Timeouts),
    /// `--start-daemon master|backup`.
    StartDaemon(DaemonOptions),
    /// `--stop-daemon master|backup`.
    StopDaemon(DaemonOptions),
    /// `-R`.
    Restore,
    /// `-S`.
    Save {
        /// `-n`.
        numeric: bool,
    },
    /// `-Z` (all services when `None`).
    Zero(Option<ServiceKey>),
    /// `-h`.
    Help,
    /// `-v`.
    Version,
}

/// What `-L` lists, and how.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListCommand {
    /// Which listing.
    pub what: ListWhat,
    /// Its options (`-n`, `--stats`, …).
    pub format: ListFormat,
}

/// The listing selected by `-L`'s options (first match: `-c`, a service, `--timeout`,
/// `--daemon`, everything).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListWhat {
    /// The whole table (with the banner).
    #[default]
    All,
    /// One service (`-L -t VIP:PORT`), without the banner.
    Service(ServiceKey),
    /// `-c`.
    Connections,
    /// `--timeout`.
    Timeouts,
    /// `--daemon`.
    Daemons,
}

/// The sync daemon roles and `--start-daemon`'s options are the director's own types.
pub use masq_core::control::{DaemonRequest as DaemonOptions, SyncRole as DaemonState};

/// How a failed parse ends the ipvsadm process; it matters inside `-R`, where only popt's own
/// errors let the restore go on to the next line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliErrorKind {
    /// `Try `prog -h' ...` (`tryhelp_exit`): the process exits.
    TryHelp,
    /// A validation failure (`fail()`): the process exits.
    Invalid,
    /// A popt error (`-t: missing argument`): `process_options` returns -1, so `-R`
    /// continues with the next line.
    Popt,
}

/// A rejected command line: the text ipvsadm prints on stderr (without the final newline)
/// and its exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// ipvsadm's message (it may itself end in a newline, as `-6 used before -f` does).
    pub message: String,
    /// The exit code: 2 for validation, 255 for `Try ...` and popt errors.
    pub code: i32,
    /// Whether the process would exit (which ends a `-R`).
    pub kind: CliErrorKind,
}

impl CliError {
    fn invalid(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 2,
            kind: CliErrorKind::Invalid,
        }
    }

    /// The `Try ...` error for `program`.
    pub fn try_help(program: &str) -> Self {
        CliError {
            message: format!("Try `{program} -h' or '{program} --help' for more information."),
            code: 255,
            kind: CliErrorKind::TryHelp,
        }
    }
}

/// Every option ipvsadm 1.31 knows, as `(long, short)`, in its popt table's order (`--list`
/// twice, for `-L` and `-l`): what masqadm's manual page and shell completions are checked
/// against.
pub fn option_names() -> impl Iterator<Item = (&'static str, Option<char>)> {
    OPTIONS.iter().map(|o| (o.long, o.short.map(char::from)))
}

/// Parse one ipvsadm argument vector (without `argv[0]`). `program` is `argv[0]` as shown in
/// the `Try ...` message; `names` resolves host and port names given on the command line.
///
/// # Errors
/// A [`CliError`] carrying ipvsadm's exact message and exit code.
pub fn parse(program: &str, args: &[String], names: &dyn Names) -> Result<Command, CliError> {
    if args.is_empty() {
        // ipvsadm with no argument lists the table, with names.
        return Ok(Command::List(ListCommand::default()));
    }
    let mut popt = Popt::new(OPTIONS, args);
    let (id, value) = match popt.next_opt() {
        Next::Opt(id, value) => (id, value),
        Next::End | Next::Error(_) => return Err(CliError::try_help(program)),
    };
    let cmd = match id {
        Id::AddService => Cmd::AddService,
        Id::EditService => Cmd::EditService,
        Id::DeleteService => Cmd::DeleteService,
        Id::AddServer => Cmd::AddServer,
        Id::EditServer => Cmd::EditServer,
        Id::DeleteServer => Cmd::DeleteServer,
        Id::Clear => Cmd::Flush,
        Id::List => Cmd::List,
        Id::Zero => Cmd::Zero,
        Id::Set => Cmd::Set,
        Id::Restore => Cmd::Restore,
        Id::Save => Cmd::Save,
        Id::StartDaemon => Cmd::StartDaemon,
        Id::StopDaemon => Cmd::StopDaemon,
        Id::Help => return Ok(Command::Help),
        Id::Version => return Ok(Command::Version),
        _ => return Err(CliError::try_help(program)),
    };
    let mut d = Draft::new(cmd);
    if matches!(cmd, Cmd::StartDaemon | Cmd::StopDaemon) {
        d.daemon_state = match value.as_deref() {
            Some("master") => DaemonState::Master,
            Some("backup") => DaemonState::Backup,
            _ if cmd == Cmd::StartDaemon => {
                return Err(CliError::invalid(
                    "illegal start-daemon parameter specified",
                ))
            }
            _ => return Err(CliError::invalid("illegal start_daemon specified")),
        };
    }

    loop {
        match popt.next_opt() {
            Next::End => break,
            Next::Error(e) => {
                return Err(CliError {
                    message: format!("{}: {}", popt.bad_option(), e.text()),
                    code: 255,
                    kind: CliErrorKind::Popt,
                })
            }
            Next::Opt(id, value) => {
                let bad = popt.bad_option().to_string();
                apply_option(&mut d, id, value.as_deref(), &bad, names)?;
            }
        }
    }

    let mut timeouts = Timeouts::default();
    if cmd == Cmd::Set {
        let (a, b, c) = (
            popt.next_leftover(),
            popt.next_leftover(),
            popt.next_leftover(),
        );
        let (Some(a), Some(b), Some(c)) = (a, b, c) else {
            return Err(CliError::invalid("--set option requires 3 timeout values"));
        };
        timeouts = Timeouts {
            tcp: parse_timeout(Some(&a), 0).map_err(CliError::invalid)?,
            tcp_fin: parse_timeout(Some(&b), 0).map_err(CliError::invalid)?,
            udp: parse_timeout(Some(&c), 0).map_err(CliError::invalid)?,
        };
    }
    if let Some(extra) = popt.next_leftover() {
        return Err(CliError::invalid(format!("unexpected argument {extra}")));
    }
    let mut sched_flags = 0;
    if let Some(list) = &d.sched_flags_arg {
        sched_flags = parse_sched_flags(&d.sched, list).map_err(CliError::invalid)?;
    }

    matrix::check_command(cmd, d.options).map_err(CliError::invalid)?;
    finish(d, sched_flags, timeouts)
}

/// The checks after the matrix, then the typed command.
fn finish(mut d: Draft, sched_flags: u8, timeouts: Timeouts) -> Result<Command, CliError> {
    let need_service = || {
        inv(format!(
            "You need to supply the 'service-address' option for the '{}' command",
            d.cmd.name()
        ))
    };
    let service = d.service_key();
    match d.cmd {
        Cmd::AddService | Cmd::EditService => {
            if d.fwmark == 0 && d.svc_port == 0 && d.persistent.is_none() {
                return Err(inv("Zero port specified for non-persistent service"));
            }
            if d.one_packet && d.fwmark == 0 && d.protocol != 17 {
                return Err(inv(
                    "One-Packet Scheduling is only for UDP virtual services",
                ));
            }
            let key = service.ok_or_else(need_service)?;
            let params = ServiceParams {
                scheduler: if d.sched.is_empty() {
                    "wlc".to_string()
                } else {
                    d.sched.clone()
                },
                sched_flags: SchedFlags(sched_flags),
                persistent: d.persistent,
                netmask: d.netmask,
                one_packet: d.one_packet,
                pe: (!d.pe.is_empty()).then(|| d.pe.clone()),
            };
            Ok(if d.cmd == Cmd::AddService {
                Command::AddService { key, params }
            } else {
                Command::EditService { key, params }
            })
        }
        Cmd::AddServer | Cmd::EditServer => {
            // Direct routing and tunnelling cannot change the port: ipvsadm silently forces
            // the service port (not for fwmark services, which have none).
            if d.fwmark == 0 && matches!(d.fwd, FwdMethod::Route | FwdMethod::Tunnel) {
                let port = d.svc_port;
                if let Some(dest) = d.dest.as_mut() {
                    dest.port = port;
                }
            }
            if d.dest_family() != d.svc_family && d.fwd != FwdMethod::Tunnel {
                return Err(inv(
                    "Different address family is allowed only for tunneling servers",
                ));
            }
            let tunnel_options = [
                opt::TUN_TYPE,
                opt::TUN_PORT,
                opt::TUN_NOCSUM,
                opt::TUN_CSUM,
                opt::TUN_REMCSUM,
            ];
            if tunnel_options.iter().any(|&b| d.has(b)) && d.fwd != FwdMethod::Tunnel {
                return Err(inv("Tunnel options conflict with forward method"));
            }
            matrix::check_tunnel(d.tun_type, d.options).map_err(inv)?;
            let service = service.ok_or_else(need_service)?;
            let dest = d.dest.ok_or_else(|| {
                inv(format!(
                    "You need to supply the 'real-server' option for the '{}' command",
                    d.cmd.name()
                ))
            })?;
            let csum = match d.tun_flags {
                0 => TunnelCsum::NoCsum,
                1 => TunnelCsum::Csum,
                _ => TunnelCsum::RemCsum,
            };
            let params = DestParams {
                fwd: d.fwd,
                weight: d.weight,
                u_threshold: d.u_threshold,
                l_threshold: d.l_threshold,
                tunnel: match d.tun_type {
                    TunType::Ipip => TunnelKind::Ipip,
                    TunType::Gue => TunnelKind::Gue {
                        port: d.tun_port,
                        csum,
                    },
                    TunType::Gre => TunnelKind::Gre { csum },
                },
            };
            Ok(if d.cmd == Cmd::AddServer {
                Command::AddDest {
                    service,
                    dest,
                    params,
                }
            } else {
                Command::EditDest {
                    service,
                    dest,
                    params,
                }
            })
        }
        Cmd::DeleteServer => {
            let service = service.ok_or_else(need_service)?;
            let dest = d.dest.ok_or_else(|| {
                inv("You need to supply the 'real-server' option for the 'delete-server' command")
            })?;
            Ok(Command::DeleteDest { service, dest })
        }
        Cmd::DeleteService => Ok(Command::DeleteService(service.ok_or_else(need_service)?)),
        Cmd::Flush => Ok(Command::Flush),
        Cmd::Zero => Ok(Command::Zero(service)),
        Cmd::Set => Ok(Command::SetTimeouts(timeouts)),
        Cmd::Restore => Ok(Command::Restore),
        Cmd::Save => Ok(Command::Save {
            numeric: d.format.numeric,
        }),
        Cmd::List => {
            let listing_with_counters =
                d.has(opt::STATS) || d.has(opt::RATE) || d.has(opt::THRESHOLDS);
            if ((d.has(opt::CONNECTION) || d.has(opt::TIMEOUT) || d.has(opt::DAEMON))
                && listing_with_counters)
                || ((d.has(opt::TIMEOUT) || d.has(opt::DAEMON)) && d.has(opt::PERSISTENT_CONN))
            {
                return Err(inv("options conflicts in the list command"));
            }
            let what = if d.has(opt::CONNECTION) {
                ListWhat::Connections
            } else if let Some(key) = service {
                ListWhat::Service(key)
            } else if d.has(opt::TIMEOUT) {
                ListWhat::Timeouts
            } else if d.has(opt::DAEMON) {
                ListWhat::Daemons
            } else {
                ListWhat::All
            };
            Ok(Command::List(ListCommand {
                what,
                format: std::mem::take(&mut d.format),
            }))
        }
        Cmd::StartDaemon | Cmd::StopDaemon => {
            let opts = DaemonOptions {
                role: d.daemon_state,
                mcast_interface: if d.mcast_interface.is_empty() && d.cmd == Cmd::StartDaemon {
                    "eth0".to_string()
                } else {
                    d.mcast_interface.clone()
                },
                syncid: d.syncid,
                mcast_group: d.mcast_group,
                mcast_port: d.mcast_port,
                mcast_ttl: d.mcast_ttl,
                sync_maxlen: d.sync_maxlen,
            };
            Ok(if d.cmd == Cmd::StartDaemon {
                Command::StartDaemon(opts)
            } else {
                Command::StopDaemon(opts)
            })
        }
    }
}
