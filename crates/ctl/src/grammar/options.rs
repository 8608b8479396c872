//! ipvsadm's popt option table and the per-option handling of `parse_options`: each option
//! after the command, in argv order, sets its matrix column (a second use is an error before
//! its value is looked at), validates its value, and fills in the command entry.

use std::net::IpAddr;

use masq_core::control::{DestKey, Family, FwdMethod, ServiceKey};

use super::matrix::{opt, Cmd, TunType, OPT_NAMES};
use super::popt::{ArgKind, OptDef};
use super::values::{
    self, bounded, parse_fwmark, parse_mcast_group, parse_netmask, parse_service, parse_timeout,
};
use super::{CliError, DaemonState};
use crate::c_parse::{atoi, string_to_number};
use crate::format::ListFormat;
use crate::names::Names;

/// A validation failure (`fail(2, …)`).
pub(super) fn inv(message: impl Into<String>) -> CliError {
    CliError::invalid(message)
}

/// The popt option ids (ipvsadm's `val`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Id {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    TcpService,
    UdpService,
    SctpService,
    FwmarkService,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    Syncid,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

const fn o(long: &'static str, short: u8, arg: ArgKind, id: Id) -> OptDef<Id> {
    OptDef {
        long,
        short: if short == 0 { None } else { Some(short) },
        arg,
        id,
    }
}

use ArgKind::{Flag, Optional, Required};

/// ipvsadm 1.31's popt table, in its order (which decides nothing visible except that both
/// `--list` rows map to the same command).
pub(super) const OPTIONS: &[OptDef<Id>] = &[
    o("add-service", b'A', Flag, Id::AddService),
    o("edit-service", b'E', Flag, Id::EditService),
    o("delete-service", b'D', Flag, Id::DeleteService),
    o("clear", b'C', Flag, Id::Clear),
    o("list", b'L', Flag, Id::List),
    o("list", b'l', Flag, Id::List),
    o("zero", b'Z', Flag, Id::Zero),
    o("add-server", b'a', Flag, Id::AddServer),
    o("edit-server", b'e', Flag, Id::EditServer),
    o("delete-server", b'd', Flag, Id::DeleteServer),
    o("set", 0, Flag, Id::Set),
    o("help", b'h', Flag, Id::Help),
    o("version", b'v', Flag, Id::Version),
    o("restore", b'R', Flag, Id::Restore),
    o("save", b'S', Flag, Id::Save),
    o("start-daemon", 0, Required, Id::StartDaemon),
    o("stop-daemon", 0, Required, Id::StopDaemon),
    o("tcp-service", b't', Required, Id::TcpService),
    o("udp-service", b'u', Required, Id::UdpService),
    o("sctp-service", 0, Required, Id::SctpService),
    o("fwmark-service", b'f', Required, Id::FwmarkService),
    o("scheduler", b's', Required, Id::Scheduler),
    o("persistent", b'p', Optional, Id::Persistent),
    o("netmask", b'M', Required, Id::Netmask),
    o("real-server", b'r', Required, Id::RealServer),
    o("masquerading", b'm', Flag, Id::Masquerading),
    o("ipip", b'i', Flag, Id::Ipip),
    o("gatewaying", b'g', Flag, Id::Gatewaying),
    o("weight", b'w', Required, Id::Weight),
    o("u-threshold", b'x', Required, Id::UThreshold),
    o("l-threshold", b'y', Required, Id::LThreshold),
    o("numeric", b'n', Flag, Id::Numeric),
    o("connection", b'c', Flag, Id::Connection),
    o("mcast-interface", 0, Required, Id::McastInterface),
    o("syncid", 0, Required, Id::Syncid),
    o("timeout", 0, Flag, Id::Timeout),
    o("daemon", 0, Flag, Id::Daemon),
    o("stats", 0, Flag, Id::Stats),
    o("rate", 0, Flag, Id::Rate),
    o("thresholds", 0, Flag, Id::Thresholds),
    o("persistent-conn", 0, Flag, Id::PersistentConn),
    o("nosort", 0, Flag, Id::NoSort),
    o("sort", 0, Flag, Id::Sort),
    o("exact", b'X', Flag, Id::Exact),
    o("ipv6", b'6', Flag, Id::Ipv6),
    o("ops", b'o', Flag, Id::Ops),
    o("pe", 0, Required, Id::Pe),
    o("sched-flags", b'b', Required, Id::SchedFlags),
    o("mcast-group", 0, Required, Id::McastGroup),
    o("mcast-port", 0, Required, Id::McastPort),
    o("mcast-ttl", 0, Required, Id::McastTtl),
    o("sync-maxlen", 0, Required, Id::SyncMaxlen),
    o("tun-info", 0, Flag, Id::TunInfo),
    o("tun-type", 0, Required, Id::TunType),
    o("tun-port", 0, Required, Id::TunPort),
    o("tun-nocsum", 0, Flag, Id::TunNocsum),
    o("tun-csum", 0, Flag, Id::TunCsum),
    o("tun-remcsum", 0, Flag, Id::TunRemcsum),
];

/// Kernel name-buffer sizes less the terminator: scheduler, persistence engine, interface.
const NAME_MAX: usize = 15;

/// `struct ipvs_command_entry` while it is being filled in, with ipvsadm's defaults.
pub(super) struct Draft {
    pub(super) cmd: Cmd,
    pub(super) options: u64,
    /// 0 (unset), 6, 17 or 132.
    pub(super) protocol: u8,
    pub(super) svc_family: Option<Family>,
    pub(super) svc_addr: Option<IpAddr>,
    pub(super) svc_port: u16,
    pub(super) fwmark: u32,
    pub(super) sched: String,
    pub(super) persistent: Option<u32>,
    pub(super) netmask: u32,
    pub(super) one_packet: bool,
    pub(super) pe: String,
    pub(super) sched_flags_arg: Option<String>,
    pub(super) dest: Option<DestKey>,
    pub(super) fwd: FwdMethod,
    pub(super) weight: i32,
    pub(super) u_threshold: u32,
    pub(super) l_threshold: u32,
    pub(super) tun_type: TunType,
    pub(super) tun_port: u16,
    pub(super) tun_flags: u8,
    pub(super) daemon_state: DaemonState,
    pub(super) mcast_interface: String,
    pub(super) syncid: u8,
    pub(super) mcast_group: Option<IpAddr>,
    pub(super) mcast_port: Option<u16>,
    pub(super) mcast_ttl: Option<u8>,
    pub(super) sync_maxlen: Option<u16>,
    pub(super) format: ListFormat,
}

impl Draft {
    pub(super) fn new(cmd: Cmd) -> Self {
        Draft {
            cmd,
            options: 0,
            protocol: 0,
            svc_family: None,
            svc_addr: None,
            svc_port: 0,
            fwmark: 0,
            sched: String::new(),
            persistent: None,
            netmask: u32::MAX,
            one_packet: false,
            pe: String::new(),
            sched_flags_arg: None,
            dest: None,
            // ipvsadm's default forwarding method is direct routing.
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunType::Ipip,
            tun_port: 0,
            tun_flags: 0,
            daemon_state: DaemonState::Master,
            mcast_interface: String::new(),
            syncid: 0,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
            sync_maxlen: None,
            format: ListFormat::default(),
        }
    }

    pub(super) fn has(&self, bit: usize) -> bool {
        self.options & (1u64 << bit) != 0
    }

    /// `set_option`: a second use of a column is an error, before its value is looked at.
    fn set(&mut self, bit: usize) -> Result<(), CliError> {
        if self.has(bit) {
            return Err(CliError::invalid(format!(
                "multiple '{}' options specified",
                OPT_NAMES[bit]
            )));
        }
        self.options |= 1u64 << bit;
        Ok(())
    }

    pub(super) fn dest_family(&self) -> Option<Family> {
        self.dest.map(|d| match d.addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        })
    }

    pub(super) fn service_key(&self) -> Option<ServiceKey> {
        if !self.has(opt::SERVICE) {
            return None;
        }
        if self.fwmark != 0 {
            return Some(ServiceKey::Fwmark {
                mark: self.fwmark,
                family: self.svc_family.unwrap_or(Family::Inet),
            });
        }
        Some(ServiceKey::Addr {
            protocol: values::protocol_of(self.protocol)?,
            addr: self.svc_addr?,
            port: self.svc_port,
        })
    }
}

/// One option after the command, in argv order (the `while (poptGetNextOpt())` switch).
pub(super) fn apply_option(
    d: &mut Draft,
    id: Id,
    value: Option<&str>,
    bad: &str,
    names: &dyn Names,
) -> Result<(), CliError> {
    let v = value.unwrap_or("");
    match id {
        Id::TcpService | Id::UdpService | Id::SctpService => {
            d.set(opt::SERVICE)?;
            d.protocol = match id {
                Id::TcpService => 6,
                Id::UdpService => 17,
                _ => 132,
            };
            let hp = parse_service(v, d.protocol, names)
                .ok_or_else(|| inv("illegal virtual server address[:port] specified"))?;
            d.svc_addr = Some(hp.addr);
            if let Some(p) = hp.port {
                d.svc_port = p;
            }
            if hp.addr.is_ipv6() {
                d.svc_family = Some(Family::Inet6);
                d.netmask = 128;
            } else {
                d.svc_family = Some(Family::Inet);
            }
        }
        Id::FwmarkService => {
            d.set(opt::SERVICE)?;
            // ipvsadm stores a fwmark service as IPv4/TCP until -6 says otherwise.
            d.svc_family = Some(Family::Inet);
            d.protocol = 6;
            d.fwmark = parse_fwmark(v).map_err(inv)?;
        }
        Id::Scheduler => {
            d.set(opt::SCHEDULER)?;
            d.sched = bounded(v, NAME_MAX);
        }
        Id::Persistent => {
            d.set(opt::PERSISTENT)?;
            d.persistent = Some(parse_timeout(value, 1).map_err(inv)?);
        }
        Id::Netmask => {
            d.set(opt::NETMASK)?;
            if d.svc_family == Some(Family::Inet6) {
                let prefix = atoi(v);
                if !(1..=128).contains(&prefix) {
                    return Err(inv("illegal ipv6 netmask specified"));
                }
                d.netmask = prefix as u32;
            } else {
                d.netmask = parse_netmask(v, names)
                    .ok_or_else(|| inv("illegal virtual server persistent mask specified"))?;
            }
        }
        Id::RealServer => {
            d.set(opt::SERVER)?;
            // ipvsadm parses into a copy of the service as it stands now: its protocol picks
            // the port-name table, and its port is the default.
            let hp = parse_service(v, d.protocol, names)
                .ok_or_else(|| inv("illegal real server address[:port] specified"))?;
            d.dest = Some(DestKey {
                addr: hp.addr,
                port: hp.port.unwrap_or(d.svc_port),
            });
        }
        Id::Masquerading | Id::Ipip | Id::Gatewaying => {
            d.set(opt::FORWARD)?;
            d.fwd = match id {
                Id::Masquerading => FwdMethod::Masq,
                Id::Ipip => FwdMethod::Tunnel,
                _ => FwdMethod::Route,
            };
        }
        Id::Weight => {
            d.set(opt::WEIGHT)?;
            // Debian's patch: 0..INT_MAX (upstream 0..65535).
            d.weight = string_to_number(v, 0, i64::from(i32::MAX))
                .ok_or_else(|| inv("illegal weight specified"))? as i32;
        }
        Id::UThreshold => {
            d.set(opt::UTHRESHOLD)?;
            d.u_threshold = string_to_number(v, 0, i64::from(i32::MAX))
                .ok_or_else(|| inv("illegal u_threshold specified"))?
                as u32;
        }
        Id::LThreshold => {
            d.set(opt::LTHRESHOLD)?;
            d.l_threshold = string_to_number(v, 0, i64::from(i32::MAX))
                .ok_or_else(|| inv("illegal l_threshold specified"))?
                as u32;
        }
        Id::Connection => d.set(opt::CONNECTION)?,
        Id::Numeric => {
            d.set(opt::NUMERIC)?;
            d.format.numeric = true;
        }
        Id::McastInterface => {
            d.set(opt::MCAST_INTERFACE)?;
            d.mcast_interface = bounded(v, NAME_MAX);
        }
        Id::Syncid => {
            d.set(opt::SYNCID)?;
            d.syncid =
                string_to_number(v, 0, 255).ok_or_else(|| inv("illegal syncid specified"))? as u8;
        }
        Id::Timeout => d.set(opt::TIMEOUT)?,
        Id::Daemon => d.set(opt::DAEMON)?,
        Id::Stats => {
            d.set(opt::STATS)?;
            d.format.stats = true;
        }
        Id::Rate => {
            d.set(opt::RATE)?;
            d.format.rate = true;
        }
        Id::Thresholds => {
            d.set(opt::THRESHOLDS)?;
            d.format.thresholds = true;
        }
        Id::PersistentConn => {
            d.set(opt::PERSISTENT_CONN)?;
            d.format.persistent_conn = true;
        }
        Id::NoSort => {
            d.set(opt::NOSORT)?;
            d.format.nosort = true;
        }
        // Sorting is the default; --sort is kept for compatibility and is not in the matrix.
        Id::Sort => {}
        Id::Exact => {
            d.set(opt::EXACT)?;
            d.format.exact = true;
        }
        Id::Ipv6 => {
            if d.fwmark == 0 {
                // ipvsadm's message carries its own newline, so an empty line follows.
                return Err(inv("-6 used before -f\n"));
            }
            d.svc_family = Some(Family::Inet6);
            d.netmask = 128;
        }
        Id::Ops => {
            d.set(opt::ONEPACKET)?;
            d.one_packet = true;
        }
        Id::Pe => {
            d.set(opt::PE)?;
            d.pe = bounded(v, NAME_MAX);
        }
        Id::SchedFlags => {
            d.set(opt::SCHED_FLAGS)?;
            // Checked after all options, against the final scheduler.
            d.sched_flags_arg = Some(v.to_string());
        }
        Id::McastGroup => {
            d.set(opt::MCAST_GROUP)?;
            d.mcast_group = Some(parse_mcast_group(v).map_err(inv)?);
        }
        Id::McastPort => {
            d.set(opt::MCAST_PORT)?;
            d.mcast_port = Some(
                string_to_number(v, 1, 65535).ok_or_else(|| inv("illegal mcast-port specified"))?
                    as u16,
            );
        }
        Id::McastTtl => {
            d.set(opt::MCAST_TTL)?;
            d.mcast_ttl = Some(
                string_to_number(v, 1, 255).ok_or_else(|| inv("illegal mcast-ttl specified"))?
                    as u8,
            );
        }
        Id::SyncMaxlen => {
            d.set(opt::SYNC_MAXLEN)?;
            d.sync_maxlen = Some(
                string_to_number(v, 1, 65535 - 20 - 8)
                    .ok_or_else(|| inv("illegal sync-maxlen specified"))? as u16,
            );
        }
        Id::TunInfo => {
            d.set(opt::TUN_INFO)?;
            d.format.tun_info = true;
        }
        Id::TunType => {
            d.set(opt::TUN_TYPE)?;
            d.tun_type = match v {
                "ipip" => TunType::Ipip,
                "gue" => TunType::Gue,
                "gre" => TunType::Gre,
                _ => return Err(inv("illegal tunnel type specified")),
            };
        }
        Id::TunPort => {
            d.set(opt::TUN_PORT)?;
            d.tun_port = string_to_number(v, 1, 65535)
                .ok_or_else(|| inv("illegal tunnel port specified"))?
                as u16;
        }
        Id::TunNocsum => {
            d.set(opt::TUN_NOCSUM)?;
            d.tun_flags = 0;
        }
        Id::TunCsum => {
            d.set(opt::TUN_CSUM)?;
            d.tun_flags |= 1;
        }
        Id::TunRemcsum => {
            d.set(opt::TUN_REMCSUM)?;
            d.tun_flags |= 2;
        }
        // A second command (or -h/-v) after the first one.
        Id::AddService
        | Id::EditService
        | Id::DeleteService
        | Id::Clear
        | Id::List
        | Id::Zero
        | Id::AddServer
        | Id::EditServer
        | Id::DeleteServer
        | Id::Set
        | Id::Help
        | Id::Version
        | Id::Restore
        | Id::Save
        | Id::StartDaemon
        | Id::StopDaemon => return Err(inv(format!("invalid option `{bad}'"))),
    }
    Ok(())
}
