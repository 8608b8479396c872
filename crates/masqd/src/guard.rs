//! Keeps the director's own kernel from answering service traffic.
//!
//! AF_PACKET hands masqd a copy of every frame, but the kernel still processes its own
//! copy. When the VIP is also a kernel address (as in the classic lab), the kernel would
//! answer a SYN to VIP:80 with a RST, or a UDP datagram with ICMP port unreachable, racing
//! masqd's forwarded packet. An nftables `input` rule dropping service traffic on the VIP
//! interface silences it; AF_PACKET taps run before netfilter, so masqd still sees every
//! frame. The rules live in masqd's own table, rewritten whenever the services change and
//! removed when masqd stops.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use masq_core::control::{Protocol, ServiceKey};
use masq_core::service::ServiceTable;

/// The nftables table masqd owns.
const TABLE: &str = "masq_guard";

/// How the guard is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GuardMode {
    /// Use nftables when `nft` is installed; warn otherwise.
    Auto,
    /// Require nftables.
    Nft,
    /// Leave the kernel alone (the VIP must then not be a kernel address).
    Off,
}

/// One service the kernel must not answer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Guarded {
    protocol: &'static str,
    vip: Ipv4Addr,
    /// 0 = every port (a port-0 persistent service).
    port: u16,
}

/// The installed guard.
#[derive(Debug)]
pub struct KernelGuard {
    mode: GuardMode,
    iface: String,
    installed: Option<Vec<Guarded>>,
    nft_missing: bool,
}

impl KernelGuard {
    /// A guard for the VIP interface `iface`; nothing is installed until [`Self::sync`].
    ///
    /// # Errors
    /// With [`GuardMode::Nft`], if `nft` cannot be run.
    pub fn new(mode: GuardMode, iface: &str) -> Result<Self> {
        let nft_missing = mode != GuardMode::Off && !nft_available();
        if mode == GuardMode::Nft && nft_missing {
            bail!("--kernel-guard nft: the nft command is not available (install nftables)");
        }
        Ok(KernelGuard {
            mode,
            iface: iface.to_string(),
            installed: None,
            nft_missing,
        })
    }

    /// Makes the installed rules match `table`'s services. Cheap when nothing changed.
    ///
    /// # Errors
    /// When `nft` rejects the rules.
    pub fn sync(&mut self, table: &ServiceTable) -> Result<()> {
        if self.mode == GuardMode::Off || self.nft_missing {
            return Ok(());
        }
        let mut wanted: Vec<Guarded> = table
            .services
            .iter()
            .filter_map(|s| match s.key {
                ServiceKey::Addr {
                    protocol,
                    addr: IpAddr::V4(vip),
                    port,
                } if protocol != Protocol::Sctp => Some(Guarded {
                    protocol: if protocol == Protocol::Tcp {
                        "tcp"
                    } else {
                        "udp"
                    },
                    vip,
                    port,
                }),
                _ => None,
            })
            .collect();
        wanted.sort();
        if self.installed.as_ref() == Some(&wanted) {
            return Ok(());
        }
        let mut script = format!(
            "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n  chain input {{\n    type filter hook input priority -150; policy accept;\n"
        );
        for g in &wanted {
            let port = if g.port == 0 {
                format!("meta l4proto {}", g.protocol)
            } else {
                format!("{} dport {}", g.protocol, g.port)
            };
            script.push_str(&format!(
                "    iifname \"{}\" ip daddr {} {} drop\n",
                self.iface, g.vip, port
            ));
        }
        script.push_str("  }\n}\n");
        run_nft(&script).context("installing the kernel guard (nftables)")?;
        self.installed = Some(wanted);
        Ok(())
    }

    /// Whether the kernel is kept from answering traffic to `vip` (rules installed for it).
    pub fn protects(&self, vip: std::net::Ipv4Addr) -> bool {
        self.installed
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| g.vip == vip))
    }

    /// Why the guard is not active, if it is not: for diagnosis messages.
    pub fn why_inactive(&self) -> Option<&'static str> {
        if self.mode == GuardMode::Off {
            Some("masqd runs with --kernel-guard off")
        } else if self.nft_missing {
            Some("nft (nftables) is not installed")
        } else {
            None
        }
    }

    /// Whether the guard could not be installed because `nft` is missing.
    pub fn is_unavailable(&self) -> bool {
        self.nft_missing
    }

    /// Removes masqd's table.
    pub fn remove(&mut self) {
        if self.installed.take().is_some() {
            let _ = run_nft(&format!("table inet {TABLE}\ndelete table inet {TABLE}\n"));
        }
    }
}

impl Drop for KernelGuard {
    fn drop(&mut self) {
        self.remove();
    }
}

fn nft_available() -> bool {
    Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(script.as_bytes())
        .context("writing to nft")?;
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
