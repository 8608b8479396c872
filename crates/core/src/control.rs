//! The control-plane model: what `ipvsadm` (and so `masqadm`) can say about services and
//! destinations, the errors the kernel answers with, and the read-only views the listings
//! are printed from.
//!
//! These types are the contract between the ipvsadm grammar (`masq-ctl`) and the director.
//! They follow the kernel's `ip_vs_service_user` / `ip_vs_dest_user` closely so that the
//! grammar can stay a faithful port of ipvsadm's and the director a faithful port of
//! `ip_vs_ctl.c`.

use std::fmt;
use std::net::IpAddr;

pub use crate::sync::{DaemonConfig, DaemonRequest, SyncRole};

/// Transport protocol of a virtual service (the kernel's `IPPROTO_*` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The IP protocol number, as the kernel and ipvsadm's sort order use it.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The upper-case name ipvsadm prints (`TCP`, `UDP`, `SCTP`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// Address family of a fwmark service (`-f MARK` or `-f MARK -6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet,
    Inet6,
}

/// How a virtual service is identified: `-t/-u/--sctp-service addr:port` or `-f mark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    Addr {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    Fwmark {
        mark: u32,
        family: Family,
    },
}

impl ServiceKey {
    /// The address family of the service.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr {
                addr: IpAddr::V4(_),
                ..
            } => Family::Inet,
            ServiceKey::Addr { .. } => Family::Inet6,
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr {
                protocol,
                addr: IpAddr::V4(a),
                port,
            } => write!(f, "{} {}:{}", protocol.name(), a, port),
            ServiceKey::Addr {
                protocol,
                addr: IpAddr::V6(a),
                port,
            } => write!(f, "{} [{}]:{}", protocol.name(), a, port),
            ServiceKey::Fwmark { mark, .. } => write!(f, "FWM {mark}"),
        }
    }
}

/// Scheduler flags (`-b`): the kernel's IP_VS_SVC_F_SCHED1..3 bits. For `sh` and `mh`
/// flag-1 is `*-fallback` and flag-2 is `*-port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SchedFlags(pub u8);

impl SchedFlags {
    pub const FLAG1: u8 = 1;
    pub const FLAG2: u8 = 2;
    pub const FLAG3: u8 = 4;

    /// `sh-fallback` / `mh-fallback` (flag-1).
    pub fn fallback(self) -> bool {
        self.0 & Self::FLAG1 != 0
    }

    /// `sh-port` / `mh-port` (flag-2).
    pub fn port(self) -> bool {
        self.0 & Self::FLAG2 != 0
    }
}

/// Everything `-A`/`-E` sends besides the key. `-E` replaces all of it (ipvsadm sends
/// defaults for what the user left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceParams {
    /// Scheduler name as typed (`none` is valid and never schedules).
    pub scheduler: String,
    pub sched_flags: SchedFlags,
    /// Persistence timeout in seconds, `None` when not persistent.
    pub persistent: Option<u32>,
    /// Persistence granularity: an IPv4 netmask as a host-order u32, or an IPv6 prefix length.
    pub netmask: u32,
    /// One-packet scheduling (`-o`).
    pub one_packet: bool,
    /// Persistence engine (`--pe`), e.g. `sip`.
    pub pe: Option<String>,
}

impl Default for ServiceParams {
    fn default() -> Self {
        ServiceParams {
            scheduler: "wlc".to_string(),
            sched_flags: SchedFlags::default(),
            persistent: None,
            netmask: u32::MAX,
            one_packet: false,
            pe: None,
        }
    }
}

/// Forwarding method of a destination (`-m`, `-g`, `-i`); `Local` is what the kernel reports
/// for a destination that is one of its own addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FwdMethod {
    Masq,
    Local,
    Tunnel,
    Route,
}

impl FwdMethod {
    /// The name `ipvsadm -L` prints.
    pub fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Local => "Local",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::Route => "Route",
        }
    }
}

/// Tunnel encapsulation options of a `-i` destination (`--tun-type`, `--tun-port`, `--tun-*csum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelKind {
    #[default]
    Ipip,
    Gue {
        port: u16,
        csum: TunnelCsum,
    },
    Gre {
        csum: TunnelCsum,
    },
}

/// Checksum mode of a GUE or GRE tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelCsum {
    #[default]
    NoCsum,
    Csum,
    RemCsum,
}

/// A destination (real server) within a service: address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

/// Everything `-a`/`-e` sends besides the key. `-e` replaces all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestParams {
    pub fwd: FwdMethod,
    /// `-w`; the kernel rejects negative weights with ERANGE.
    pub weight: i32,
    /// `-x`, 0 = unset.
    pub u_threshold: u32,
    /// `-y`, 0 = unset.
    pub l_threshold: u32,
    pub tunnel: TunnelKind,
}

impl Default for DestParams {
    fn default() -> Self {
        DestParams {
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: TunnelKind::Ipip,
        }
    }
}

/// Connection timeouts in seconds, as `ipvsadm --set tcp tcpfin udp` sets them
/// (ESTABLISHED, FIN_WAIT and UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

/// What the kernel answers a control operation with, by errno. The message a user sees
/// depends on the command as well, so the text lives in `masq-ctl`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// EEXIST: the service or destination is already there.
    #[error("already exists (EEXIST)")]
    Exists,
    /// ENOENT: no such destination, or unknown scheduler / persistence engine.
    #[error("not found (ENOENT)")]
    NotFound,
    /// ESRCH: the service does not exist.
    #[error("no such service (ESRCH)")]
    NoService,
    /// ERANGE: negative weight, or lower threshold above the upper one.
    #[error("numerical result out of range (ERANGE)")]
    OutOfRange,
    /// EINVAL: not a unicast address, bad parameters.
    #[error("invalid operation (EINVAL)")]
    Invalid,
    /// ENODEV: no such interface (`--mcast-interface`).
    #[error("no such device (ENODEV)")]
    NoDevice,
    /// EAFNOSUPPORT: address family not supported by this director.
    #[error("address family not supported (EAFNOSUPPORT)")]
    FamilyNotSupported,
    /// masq-specific: the director cannot honour this (e.g. a forwarding method other than
    /// NAT). The string is the whole message shown to the user.
    #[error("{0}")]
    Unsupported(String),
}

/// Traffic counters of a service or destination (ipvsadm `--stats`), since the last `-Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsView {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Rates from the 2-second estimator (ipvsadm `--rate`), already rounded as the kernel
/// reports them: connections and packets per second, bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateView {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// One destination as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestView {
    pub key: DestKey,
    pub params: DestParams,
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    pub stats: StatsView,
    pub rate: RateView,
}

/// One service as listed, its destinations in the kernel's list order (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub key: ServiceKey,
    pub params: ServiceParams,
    pub stats: StatsView,
    pub rate: RateView,
    pub dests: Vec<DestView>,
}

/// One connection entry as `ipvsadm -c` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnView {
    /// `TCP`, `UDP`, or `IP` for a fwmark persistence template.
    pub protocol: &'static str,
    pub client: (IpAddr, u16),
    pub virtual_: (IpAddr, u16),
    pub dest: (IpAddr, u16),
    /// State name as `/proc/net/ip_vs_conn` prints it (`ESTABLISHED`, `UDP`, `NONE`, ...).
    pub state: &'static str,
    /// Whole seconds until the entry expires.
    pub expires_secs: u64,
    /// A persistence template rather than a real connection.
    pub template: bool,
}

/// The operations `ipvsadm` can ask of a director. `masq-ctl` drives this; the director
/// implements it; tests may implement it with a model.
pub trait Control {
    /// `-A`.
    fn add_service(&self, key: ServiceKey, params: ServiceParams) -> Result<(), ControlError>;
    /// `-E`.
    fn edit_service(&self, key: ServiceKey, params: ServiceParams) -> Result<(), ControlError>;
    /// `-D`.
    fn delete_service(&self, key: ServiceKey) -> Result<(), ControlError>;
    /// `-C`.
    fn flush(&self) -> Result<(), ControlError>;
    /// `-a`.
    fn add_dest(
        &self,
        service: ServiceKey,
        dest: DestKey,
        params: DestParams,
    ) -> Result<(), ControlError>;
    /// `-e`.
    fn edit_dest(
        &self,
        service: ServiceKey,
        dest: DestKey,
        params: DestParams,
    ) -> Result<(), ControlError>;
    /// `-d`.
    fn delete_dest(&self, service: ServiceKey, dest: DestKey) -> Result<(), ControlError>;
    /// `-Z` (all services when `None`).
    fn zero(&self, service: Option<ServiceKey>) -> Result<(), ControlError>;
    /// `--set tcp tcpfin udp`; a 0 leaves that value unchanged.
    fn set_timeouts(&self, timeouts: Timeouts) -> Result<(), ControlError>;
    /// `-L --timeout`.
    fn timeouts(&self) -> Timeouts;
    /// `-L`, `-S`: every service, in the director's own (unsorted) order.
    fn services(&self) -> Vec<ServiceView>;
    /// `-L -c`: every connection entry, templates included.
    fn connections(&self) -> Vec<ConnView>;
    /// `--start-daemon`.
    fn start_daemon(&self, request: DaemonRequest) -> Result<(), ControlError>;
    /// `--stop-daemon`.
    fn stop_daemon(&self, role: SyncRole) -> Result<(), ControlError>;
    /// `-L --daemon`: the running sync daemons, master first.
    fn daemons(&self) -> Vec<DaemonConfig>;
}
