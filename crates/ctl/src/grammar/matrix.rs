//! ipvsadm's legality tables: which options each command requires, forbids or treats as
//! mutually exclusive (`commands_v_options`), and the same for tunnel types
//! (`tunnel_types_v_options`). The checks walk the columns left to right and report the first
//! problem, so the column order below is part of the observable behaviour.

/// Option bits, in ipvsadm's column order (`OPT_*` = `1 << index`).
pub(crate) mod opt {
    pub const NUMERIC: usize = 0;
    pub const CONNECTION: usize = 1;
    pub const SERVICE: usize = 2;
    pub const SCHEDULER: usize = 3;
    pub const PERSISTENT: usize = 4;
    pub const NETMASK: usize = 5;
    pub const SERVER: usize = 6;
    pub const FORWARD: usize = 7;
    pub const WEIGHT: usize = 8;
    pub const UTHRESHOLD: usize = 9;
    pub const LTHRESHOLD: usize = 10;
    pub const MCAST_INTERFACE: usize = 11;
    pub const TIMEOUT: usize = 12;
    pub const DAEMON: usize = 13;
    pub const STATS: usize = 14;
    pub const RATE: usize = 15;
    pub const THRESHOLDS: usize = 16;
    pub const PERSISTENT_CONN: usize = 17;
    pub const NOSORT: usize = 18;
    pub const SYNCID: usize = 19;
    pub const EXACT: usize = 20;
    pub const ONEPACKET: usize = 21;
    pub const PE: usize = 22;
    pub const SCHED_FLAGS: usize = 23;
    pub const MCAST_GROUP: usize = 24;
    pub const MCAST_PORT: usize = 25;
    pub const MCAST_TTL: usize = 26;
    pub const SYNC_MAXLEN: usize = 27;
    pub const TUN_INFO: usize = 28;
    pub const TUN_TYPE: usize = 29;
    pub const TUN_PORT: usize = 30;
    pub const TUN_NOCSUM: usize = 31;
    pub const TUN_CSUM: usize = 32;
    pub const TUN_REMCSUM: usize = 33;
}

/// Number of option columns.
pub(crate) const NUMBER_OF_OPT: usize = 34;

/// The option names used in ipvsadm's messages, by column.
pub(crate) const OPT_NAMES: [&str; NUMBER_OF_OPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// The commands, in ipvsadm's `CMD_*` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    AddService,
    EditService,
    DeleteService,
    Flush,
    List,
    AddServer,
    DeleteServer,
    EditServer,
    Set,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    /// The command name used in messages (`cmdnames[]`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cmd::AddService => "add-service",
            Cmd::EditService => "edit-service",
            Cmd::DeleteService => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddServer => "add-server",
            Cmd::DeleteServer => "delete-server",
            Cmd::EditServer => "edit-server",
            Cmd::Set => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }

    /// The row of `commands_v_options`: `+` required, `x` illegal, `1` exclusive, `.` optional.
    ///
    /// Columns: n c svc s p M r fwd w x y mif to dmn st rt thr pc ns sid ex o pe b grp mport
    /// ttl mlen ti tt tp t- t+ tr.
    fn row(self) -> &'static [u8; NUMBER_OF_OPT] {
        match self {
            Cmd::AddService | Cmd::EditService => b"xx+...xxxxxxxxxxxxxxx...xxxxxxxxxx",
            Cmd::DeleteService => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Flush | Cmd::Set | Cmd::Restore => b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::List => b".11xxxxxxxxx11.......xxxxxxx.xxxxx",
            Cmd::AddServer | Cmd::EditServer => b"xx+xxx+....xxxxxxxxxxxxxxxxxx.....",
            Cmd::DeleteServer => b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::StartDaemon => b"xxxxxxxxxxx.xxxxxxx.xxxx....xxxxxx",
            Cmd::StopDaemon => b"xxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxx",
            Cmd::Save => b".xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Zero => b"xx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        }
    }
}

/// `generic_opt_check`: the first violation, left to right, as ipvsadm words it.
pub(crate) fn check_command(cmd: Cmd, options: u64) -> Result<(), String> {
    let row = cmd.row();
    let mut first_exclusive: Option<usize> = None;
    for (j, &rule) in row.iter().enumerate() {
        let given = options & (1u64 << j) != 0;
        if !given {
            if rule == b'+' {
                return Err(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPT_NAMES[j],
                    cmd.name()
                ));
            }
            continue;
        }
        if rule == b'x' {
            return Err(format!(
                "Illegal '{}' option with the '{}' command",
                OPT_NAMES[j],
                cmd.name()
            ));
        }
        if rule == b'1' {
            match first_exclusive {
                None => first_exclusive = Some(j),
                Some(last) => {
                    return Err(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        OPT_NAMES[j],
                        OPT_NAMES[last],
                        cmd.name()
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Tunnel types, in the kernel's `IP_VS_CONN_F_TUNNEL_TYPE_*` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TunType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunType {
    fn name(self) -> &'static str {
        match self {
            TunType::Ipip => "ipip",
            TunType::Gue => "gue",
            TunType::Gre => "gre",
        }
    }

    /// Row of `tunnel_types_v_options` over tun-port, tun-nocsum, tun-csum, tun-remcsum.
    fn row(self) -> &'static [u8; 4] {
        match self {
            TunType::Ipip => b"xxxx",
            TunType::Gue => b"+111",
            TunType::Gre => b"x11x",
        }
    }
}

/// `tunnel_opt_check`: the first violation for this tunnel type, left to right.
pub(crate) fn check_tunnel(tun: TunType, options: u64) -> Result<(), String> {
    const COLUMNS: [usize; 4] = [
        opt::TUN_PORT,
        opt::TUN_NOCSUM,
        opt::TUN_CSUM,
        opt::TUN_REMCSUM,
    ];
    let mut first_exclusive: Option<usize> = None;
    for (&k, &rule) in COLUMNS.iter().zip(tun.row().iter()) {
        let given = options & (1u64 << k) != 0;
        if !given {
            if rule == b'+' {
                return Err(format!(
                    "You need to supply the '{}' option for the '{}' tunnel type",
                    OPT_NAMES[k],
                    tun.name()
                ));
            }
            continue;
        }
        if rule == b'x' {
            return Err(format!(
                "Illegal '{}' option with the '{}' tunnel type",
                OPT_NAMES[k],
                tun.name()
            ));
        }
        if rule == b'1' {
            match first_exclusive {
                None => first_exclusive = Some(k),
                Some(last) => {
                    return Err(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                        OPT_NAMES[k],
                        OPT_NAMES[last],
                        tun.name()
                    ))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(cols: &[usize]) -> u64 {
        cols.iter().fold(0, |a, c| a | 1 << c)
    }

    #[test]
    fn rows_match_ipvsadms_table() {
        // Spot checks against `commands_v_options` in ipvsadm 1.31's ipvsadm.c.
        assert_eq!(Cmd::List.row()[opt::SYNCID], b'.');
        assert_eq!(Cmd::List.row()[opt::TUN_INFO], b'.');
        assert_eq!(Cmd::List.row()[opt::ONEPACKET], b'x');
        assert_eq!(Cmd::AddServer.row()[opt::TUN_REMCSUM], b'.');
        assert_eq!(Cmd::AddServer.row()[opt::TUN_INFO], b'x');
        assert_eq!(Cmd::AddService.row()[opt::SCHED_FLAGS], b'.');
        assert_eq!(Cmd::AddService.row()[opt::MCAST_GROUP], b'x');
        assert_eq!(Cmd::StartDaemon.row()[opt::SYNC_MAXLEN], b'.');
        assert_eq!(Cmd::StartDaemon.row()[opt::MCAST_INTERFACE], b'.');
        assert_eq!(Cmd::StopDaemon.row()[opt::MCAST_INTERFACE], b'x');
        let allowed = |c: Cmd| c.row().iter().filter(|&&r| r != b'x').count();
        assert_eq!(allowed(Cmd::StartDaemon), 6);
        assert_eq!(allowed(Cmd::StopDaemon), 1);
        assert_eq!(allowed(Cmd::Save), 1);
        assert_eq!(allowed(Cmd::Zero), 1);
        assert_eq!(allowed(Cmd::Flush), 0);
    }

    #[test]
    fn messages_left_to_right() {
        assert_eq!(
            check_command(Cmd::List, bits(&[opt::CONNECTION, opt::SERVICE])).unwrap_err(),
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
        );
        assert_eq!(
            check_command(Cmd::AddServer, bits(&[opt::SERVICE])).unwrap_err(),
            "You need to supply the 'real-server' option for the 'add-server' command"
        );
        // A missing required column left of an illegal one wins.
        assert_eq!(
            check_command(Cmd::AddServer, bits(&[opt::SCHEDULER])).unwrap_err(),
            "You need to supply the 'service-address' option for the 'add-server' command"
        );
        assert_eq!(
            check_command(Cmd::Flush, bits(&[opt::NUMERIC])).unwrap_err(),
            "Illegal 'numeric' option with the 'flush' command"
        );
        assert!(check_command(Cmd::List, bits(&[opt::NUMERIC, opt::STATS])).is_ok());
    }

    #[test]
    fn tunnel_rules() {
        assert_eq!(
            check_tunnel(TunType::Gue, 0).unwrap_err(),
            "You need to supply the 'tun-port' option for the 'gue' tunnel type"
        );
        assert_eq!(
            check_tunnel(TunType::Gre, bits(&[opt::TUN_REMCSUM])).unwrap_err(),
            "Illegal 'tun-remcsum' option with the 'gre' tunnel type"
        );
        assert_eq!(
            check_tunnel(
                TunType::Gue,
                bits(&[opt::TUN_PORT, opt::TUN_NOCSUM, opt::TUN_CSUM])
            )
            .unwrap_err(),
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type"
        );
        assert!(check_tunnel(TunType::Ipip, 0).is_ok());
        assert!(check_tunnel(TunType::Gre, bits(&[opt::TUN_CSUM])).is_ok());
    }
}
