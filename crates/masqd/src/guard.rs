//! Keeps the director's own kernel from answering service traffic.
//!
//! AF_PACKET hands masqd a copy of every frame, but the kernel still processes its own
//! copy. When the VIP is also a kernel address (as in the classic lab), the kernel would
//! answer a SYN to VIP:80 with a RST, or a UDP datagram with ICMP port unreachable, racing
//! masqd's forwarded packet. nftables rules at the interfaces' `ingress` hook (family
//! `netdev`) drop the kernel's copy as early as the kernel allows: AF_PACKET taps run
//! before that hook, so masqd still sees every frame, and the kernel's copy never reaches
//! IP input, routing or conntrack:
//!
//! - on the VIP interface, service traffic (VIP, protocol, port): silences the kernel;
//! - on the DIP interface, unicast frames from a real server to an address that is not
//!   the host's own (`fib daddr type != local`): the kernel would only route them to a
//!   drop (forwarding is off), so this saves its work on every reply; frames from a real
//!   server to the host itself (health checks, ARP) are untouched.
//!
//! The rules live in masqd's own table, rewritten whenever the services change and removed
//! when masqd stops. The table is the instance's (`instance.rs`): `netdev masq_guard_`
//! followed by 8 hex digits of a hash of the control socket's path, so two masqd on two
//! sockets never touch each other's rules, and a restarted masqd knows the table of the
//! one before it. One killed before it could remove its table (SIGKILL, a crash) leaves it
//! behind; the next start of the same instance deletes it before anything else
//! ([`KernelGuard::remove_leftover`]).

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use masq_core::control::Protocol;
use masq_core::service::ServiceTable;

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

/// What the guard's rules are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rules {
    services: Vec<Guarded>,
    /// The real servers' addresses, sorted and without duplicates.
    real_servers: Vec<Ipv4Addr>,
}

/// The installed guard.
#[derive(Debug)]
pub struct KernelGuard {
    mode: GuardMode,
    /// The instance's table.
    table: String,
    iface: String,
    /// The DIP interface, when the real servers' replies are to be dropped there too.
    dip_iface: Option<String>,
    installed: Option<Rules>,
    nft_missing: bool,
    /// Set by [`KernelGuard::remove`]: masqd is stopping and installs nothing any more.
    removed: bool,
}

impl KernelGuard {
    /// A guard for the VIP interface `iface` in the nftables table `table`; nothing is
    /// installed until [`Self::sync`].
    ///
    /// # Errors
    /// With [`GuardMode::Nft`], if `nft` cannot be run.
    pub fn new(mode: GuardMode, table: &str, iface: &str) -> Result<Self> {
        let nft_missing = mode != GuardMode::Off && !nft_available();
        if mode == GuardMode::Nft && nft_missing {
            bail!("--kernel-guard nft: the nft command is not available (install nftables)");
        }
        Ok(KernelGuard {
            mode,
            table: table.to_string(),
            iface: iface.to_string(),
            dip_iface: None,
            installed: None,
            nft_missing,
            removed: false,
        })
    }

    /// Also drops, at the DIP interface `iface`, the kernel's copy of real servers' frames
    /// that are not for the host itself (see the module documentation).
    pub fn with_dip_side(mut self, iface: &str) -> Self {
        self.dip_iface = Some(iface.to_string());
        self
    }

    /// Makes the installed rules match `table`'s services. Cheap when nothing changed.
    ///
    /// # Errors
    /// When `nft` rejects the rules.
    pub fn sync(&mut self, table: &ServiceTable) -> Result<()> {
        if self.mode == GuardMode::Off || self.nft_missing || self.removed {
            return Ok(());
        }
        let services = table
            .forwarded_services()
            .into_iter()
            .map(|(protocol, vip, port)| Guarded {
                protocol: if protocol == Protocol::Tcp {
                    "tcp"
                } else {
                    "udp"
                },
                vip,
                port,
            })
            .collect();
        let real_servers = table.real_server_addrs();
        let rules = Rules {
            services,
            real_servers,
        };
        if self.installed.as_ref() == Some(&rules) {
            return Ok(());
        }
        let script = nft_script(&self.table, &self.iface, self.dip_iface.as_deref(), &rules);
        run_nft(&script).context("installing the kernel guard (nftables)")?;
        self.installed = Some(rules);
        Ok(())
    }

    /// Whether the kernel is kept from answering traffic to `vip` (rules installed for it).
    pub fn protects(&self, vip: std::net::Ipv4Addr) -> bool {
        self.installed
            .as_ref()
            .is_some_and(|r| r.services.iter().any(|g| g.vip == vip))
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

    /// The nftables table, as `nft list table` names it (`netdev masq_guard_…`).
    pub fn table(&self) -> String {
        format!("netdev {}", self.table)
    }

    /// Deletes the instance's table if a masqd that did not stop cleanly left it behind.
    /// Whatever the mode: with `--kernel-guard off` too, stale rules must not stay.
    /// Says whether there was one.
    pub fn remove_leftover(&self) -> bool {
        if self.nft_missing {
            return false;
        }
        // Fails when there is no such table (or no nft, with --kernel-guard off).
        run_nft(&format!("delete table netdev {}\n", self.table)).is_ok()
    }

    /// Removes masqd's table; later syncs install nothing (a control request still running
    /// as masqd stops must not put the table back).
    pub fn remove(&mut self) {
        self.removed = true;
        if self.installed.take().is_some() {
            let table = &self.table;
            let _ = run_nft(&format!(
                "table netdev {table}\ndelete table netdev {table}\n"
            ));
        }
    }
}

impl Drop for KernelGuard {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The whole table, replacing any previous one atomically (one `nft -f` transaction).
fn nft_script(table: &str, vip_iface: &str, dip_iface: Option<&str>, rules: &Rules) -> String {
    // Priority -500: before any ingress chain of the host's own, so nothing else spends
    // time on frames that are masqd's.
    let mut script = format!(
        "table netdev {table}\ndelete table netdev {table}\ntable netdev {table} {{\n  chain vip_ingress {{\n    type filter hook ingress device \"{vip_iface}\" priority -500; policy accept;\n"
    );
    for g in &rules.services {
        let port = if g.port == 0 {
            format!("meta l4proto {}", g.protocol)
        } else {
            format!("{} dport {}", g.protocol, g.port)
        };
        script.push_str(&format!("    ip daddr {} {port} drop\n", g.vip));
    }
    script.push_str("  }\n");
    if let (Some(dip_iface), false) = (dip_iface, rules.real_servers.is_empty()) {
        let servers: Vec<String> = rules.real_servers.iter().map(|a| a.to_string()).collect();
        script.push_str(&format!(
            "  chain dip_ingress {{\n    type filter hook ingress device \"{dip_iface}\" priority -500; policy accept;\n    meta pkttype host ip saddr {{ {} }} fib daddr type != local drop\n  }}\n",
            servers.join(", ")
        ));
    }
    script.push_str("}\n");
    script
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(real_servers: &[[u8; 4]]) -> Rules {
        Rules {
            services: vec![
                Guarded {
                    protocol: "tcp",
                    vip: Ipv4Addr::new(192, 168, 0, 10),
                    port: 80,
                },
                Guarded {
                    protocol: "udp",
                    vip: Ipv4Addr::new(192, 168, 0, 10),
                    port: 0,
                },
            ],
            real_servers: real_servers.iter().map(|&a| Ipv4Addr::from(a)).collect(),
        }
    }

    #[test]
    fn script_drops_service_traffic_at_vip_ingress_and_replies_at_dip_ingress() {
        let script = nft_script(
            "masq_guard_0123abcd",
            "ext0",
            Some("int0"),
            &rules(&[[192, 168, 100, 7], [192, 168, 100, 9]]),
        );
        assert!(script.starts_with(
            "table netdev masq_guard_0123abcd\ndelete table netdev masq_guard_0123abcd\ntable netdev masq_guard_0123abcd {\n"
        ));
        assert!(script.contains("type filter hook ingress device \"ext0\" priority -500;"));
        assert!(script.contains("    ip daddr 192.168.0.10 tcp dport 80 drop\n"));
        assert!(script.contains("    ip daddr 192.168.0.10 meta l4proto udp drop\n"));
        assert!(script.contains("type filter hook ingress device \"int0\" priority -500;"));
        assert!(script.contains(
            "meta pkttype host ip saddr { 192.168.100.7, 192.168.100.9 } fib daddr type != local drop"
        ));
    }

    #[test]
    fn no_dip_chain_without_real_servers_or_dip_side() {
        let table = "masq_guard_0123abcd";
        assert!(!nft_script(table, "ext0", Some("int0"), &rules(&[])).contains("dip_ingress"));
        assert!(!nft_script(table, "ext0", None, &rules(&[[10, 0, 0, 1]])).contains("dip_ingress"));
    }
}
