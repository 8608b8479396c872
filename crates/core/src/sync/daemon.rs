//! The sync daemons the operator started (`--start-daemon master|backup`): at most one
//! master and one backup, each with the options the kernel fills in when they are left
//! out. The sockets themselves are the daemon binary's business; this is the state it
//! follows and `-L --daemon` lists.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

use masq_wire::ipvs_sync::{DEFAULT_GROUP, DEFAULT_PORT};

use crate::control::ControlError;

/// Which way a sync daemon works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncRole {
    /// Sends this director's connections.
    Master,
    /// Receives a master's connections.
    Backup,
}

impl SyncRole {
    /// The word ipvsadm prints (`master`, `backup`).
    pub fn name(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
        }
    }

    fn index(self) -> usize {
        match self {
            SyncRole::Master => 0,
            SyncRole::Backup => 1,
        }
    }
}

/// `--start-daemon` as given: what is `None` takes the kernel's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonRequest {
    pub role: SyncRole,
    pub mcast_interface: String,
    pub syncid: u8,
    pub sync_maxlen: Option<u16>,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: Option<u16>,
    pub mcast_ttl: Option<u8>,
}

/// A running daemon's options, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub role: SyncRole,
    pub mcast_interface: String,
    pub syncid: u8,
    /// Largest message sent (UDP payload bytes).
    pub sync_maxlen: u16,
    pub mcast_group: IpAddr,
    pub mcast_port: u16,
    pub mcast_ttl: u8,
}

/// The MTU of an interface by name, or `None` when there is no such interface.
pub type InterfaceMtu = dyn Fn(&str) -> Option<u32> + Send + Sync;

const ETHERNET_MTU: u32 = 1500;
/// IPv4 and UDP headers: what a message leaves of the interface's MTU.
const IPV4_UDP_HEADERS: u32 = 28;
/// IPv6 and UDP headers.
const IPV6_UDP_HEADERS: u32 = 48;
/// The kernel sizes a backup's receive buffer for at least an Ethernet MTU...
const BACKUP_MIN_MTU: u32 = ETHERNET_MTU;
/// ...and never below this many bytes when a maxlen is given.
const BACKUP_MIN_MAXLEN: u16 = 1024;

/// The started daemons, changed only by the control plane.
#[derive(Default)]
pub struct SyncDaemons {
    running: Mutex<[Option<DaemonConfig>; 2]>,
    /// Bumped on every start and stop, so that the daemon binary notices a change
    /// without comparing configurations.
    generation: AtomicU64,
    /// A backup runs: the director stands by (see [`SyncDaemons::standing_by`]).
    backup_running: AtomicBool,
    /// Set once by the binary that owns the sockets; until then every interface is
    /// taken to exist with an Ethernet MTU (as in the core's tests).
    interface_mtu: OnceLock<Box<InterfaceMtu>>,
}

impl std::fmt::Debug for SyncDaemons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncDaemons")
            .field("running", &self.list())
            .finish_non_exhaustive()
    }
}

impl SyncDaemons {
    /// Has `--mcast-interface` answered by `interface_mtu` from now on; only the first
    /// call counts.
    pub fn look_up_interfaces_with(&self, interface_mtu: Box<InterfaceMtu>) {
        let _ = self.interface_mtu.set(interface_mtu);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Option<DaemonConfig>; 2]> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a daemon, filling in the kernel's defaults: group 224.0.0.81, port 8848,
    /// TTL 1, and a maxlen of the interface's MTU less the IP and UDP headers. A given
    /// maxlen is clamped as the kernel clamps it (a master's message larger than the MTU
    /// leaves fragmented).
    ///
    /// # Errors
    /// [`ControlError::Exists`] if a daemon of that role runs, [`ControlError::NoDevice`]
    /// for an unknown interface.
    pub fn start(&self, request: DaemonRequest) -> Result<(), ControlError> {
        let mut running = self.lock();
        let slot = &mut running[request.role.index()];
        if slot.is_some() {
            return Err(ControlError::Exists);
        }
        let mtu = match self.interface_mtu.get() {
            Some(lookup) => lookup(&request.mcast_interface).ok_or(ControlError::NoDevice)?,
            None => ETHERNET_MTU,
        };
        let group = request.mcast_group.unwrap_or(IpAddr::V4(DEFAULT_GROUP));
        let headers = match group {
            IpAddr::V4(_) => IPV4_UDP_HEADERS,
            IpAddr::V6(_) => IPV6_UDP_HEADERS,
        };
        let mtu = match request.role {
            SyncRole::Master => mtu,
            SyncRole::Backup => mtu.max(BACKUP_MIN_MTU),
        };
        let most = u16::MAX - headers as u16;
        let least = match request.role {
            SyncRole::Master => 1,
            SyncRole::Backup => BACKUP_MIN_MAXLEN,
        };
        let sync_maxlen = match request.sync_maxlen {
            Some(given) => given.clamp(least, most),
            None => u16::try_from(mtu.saturating_sub(headers)).map_or(most, |m| m.min(most)),
        };
        *slot = Some(DaemonConfig {
            role: request.role,
            mcast_interface: request.mcast_interface,
            syncid: request.syncid,
            sync_maxlen,
            mcast_group: group,
            mcast_port: request.mcast_port.unwrap_or(DEFAULT_PORT),
            mcast_ttl: request.mcast_ttl.unwrap_or(1),
        });
        self.backup_running
            .store(running[SyncRole::Backup.index()].is_some(), Relaxed);
        self.generation.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Stops the daemon of `role`.
    ///
    /// # Errors
    /// [`ControlError::NoService`] (ESRCH) when none runs.
    pub fn stop(&self, role: SyncRole) -> Result<(), ControlError> {
        let mut running = self.lock();
        running[role.index()]
            .take()
            .ok_or(ControlError::NoService)?;
        self.backup_running
            .store(running[SyncRole::Backup.index()].is_some(), Relaxed);
        self.generation.fetch_add(1, Relaxed);
        Ok(())
    }

    /// The running daemons, master first.
    pub fn list(&self) -> Vec<DaemonConfig> {
        self.lock().iter().flatten().cloned().collect()
    }

    /// The running daemon of `role`.
    pub fn get(&self, role: SyncRole) -> Option<DaemonConfig> {
        self.lock()[role.index()].clone()
    }

    /// Whether the director stands by for a master: while a backup daemon runs it
    /// answers no ARP request for a VIP and announces none, so that the clients' traffic
    /// keeps going to the master; it forwards whatever traffic reaches it all the same.
    /// `--stop-daemon backup` makes it take the VIPs over (masqd then announces them).
    pub fn standing_by(&self) -> bool {
        self.backup_running.load(Relaxed)
    }

    /// Changes with every start and stop.
    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(role: SyncRole) -> DaemonRequest {
        DaemonRequest {
            role,
            mcast_interface: "br0".into(),
            syncid: 7,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        }
    }

    #[test]
    fn fills_in_the_kernels_defaults() {
        let d = SyncDaemons::default();
        d.start(request(SyncRole::Master)).expect("starts");
        let c = d.get(SyncRole::Master).expect("running");
        assert_eq!(
            (c.sync_maxlen, c.mcast_group, c.mcast_port, c.mcast_ttl),
            (1472, IpAddr::V4(DEFAULT_GROUP), 8848, 1)
        );
    }

    #[test]
    fn one_daemon_per_role() {
        let d = SyncDaemons::default();
        d.start(request(SyncRole::Backup)).expect("backup");
        d.start(request(SyncRole::Master))
            .expect("master beside it");
        assert_eq!(
            d.start(request(SyncRole::Master)),
            Err(ControlError::Exists)
        );
        let roles: Vec<SyncRole> = d.list().iter().map(|c| c.role).collect();
        assert_eq!(roles, [SyncRole::Master, SyncRole::Backup]);
        let before = d.generation();
        d.stop(SyncRole::Master).expect("stops");
        assert_ne!(d.generation(), before);
        assert_eq!(d.stop(SyncRole::Master), Err(ControlError::NoService));
    }

    #[test]
    fn refuses_an_unknown_interface() {
        let d = SyncDaemons::default();
        d.look_up_interfaces_with(Box::new(|name| (name == "br0").then_some(1500)));
        let mut r = request(SyncRole::Master);
        r.mcast_interface = "nope0".into();
        assert_eq!(d.start(r), Err(ControlError::NoDevice));
        assert!(d.list().is_empty());
    }

    #[test]
    fn clamps_a_given_maxlen_as_the_kernel() {
        let d = SyncDaemons::default();
        let mut r = request(SyncRole::Backup);
        r.sync_maxlen = Some(100);
        d.start(r).expect("backup");
        assert_eq!(d.get(SyncRole::Backup).map(|c| c.sync_maxlen), Some(1024));
        let mut r = request(SyncRole::Master);
        r.sync_maxlen = Some(9000);
        d.start(r).expect("master");
        assert_eq!(d.get(SyncRole::Master).map(|c| c.sync_maxlen), Some(9000));
    }
}
