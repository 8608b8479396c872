//! What masqadm answers on its own, without masqd: `-h`/`--help` and `-v`/`--version`.
//!
//! Whether an argument vector asks for one of them is decided by the ipvsadm grammar
//! itself, so that masqadm answers exactly the vectors ipvsadm would (`-h --bogus` is help,
//! `-L -h` is an error, which masqd reports). The help is ipvsadm 1.31's text, byte for
//! byte as the control language prints it, followed by a section for masq's own commands;
//! the version is ipvsadm's line (scripts read it) followed by masqadm's own.

use masq_ctl::grammar::{self, Command};
use masq_ctl::NumericOnly;

/// The `argv[0]` masqadm shows in messages and in the help's usage lines.
pub const PROGRAM: &str = "masqadm";

/// What masqadm prints for `args` without asking masqd, or None when masqd must answer.
pub fn answer(args: &[String]) -> Option<String> {
    match grammar::parse(PROGRAM, args, &NumericOnly) {
        Ok(Command::Help) => Some(help()),
        Ok(Command::Version) => Some(version()),
        _ => None,
    }
}

/// ipvsadm's help, then masq's own commands.
fn help() -> String {
    let mut out = masq_ctl::help::usage(PROGRAM);
    out.push_str(MASQ_SECTION);
    out
}

/// ipvsadm's version line, then masqadm's own: `masqadm vX.Y.Z (…)`, the same shape.
fn version() -> String {
    format!(
        "{}masqadm v{} (masq, userspace LVS: talks to masqd, not to kernel IPVS)\n",
        masq_ctl::help::VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

/// masq's commands and options that ipvsadm does not have (docs/man/masqadm.8 describes
/// them at length).
const MASQ_SECTION: &str = "\
\n\
masq's own commands (not in ipvsadm):\n\
\x20 masqadm --check\n\
\x20 masqadm --trace [-t|-u service-address] [--count N] [--packets] [--json]\n\
\x20 masqadm --capture FILE [-t|-u service-address] [--count N] [--packets]\n\
\x20 masqadm --sim-request [-t|-u service-address] [--from CIP] [--count N]\n\
\x20 masqadm --socket PATH command [options]\n\
\n\
\x20 --check                             check the host and what the data path\n\
\x20                                     noticed, a fix for each problem\n\
\x20 --trace                             show each new connection's four stages\n\
\x20 --capture FILE                      write those stages' frames to FILE\n\
\x20 --sim-request                       connect from the simulated lab's client\n\
\x20                                     (masqd --simulate), say who answered\n\
\x20 --socket PATH                       masqd's control socket, before the command\n\
\x20                                     (default $MASQ_SOCKET, else\n\
\x20                                     /run/masq/masqd.sock)\n\
\n\
--trace and --capture options:\n\
\x20 --tcp-service|-t service-address    only this TCP service (VIP:PORT)\n\
\x20 --udp-service|-u service-address    only this UDP service (VIP:PORT)\n\
\x20 --count|-n N                        stop after N connections\n\
\x20 --packets                           every packet, not only the first ones\n\
\x20 --json                              one JSON object a line (--trace only)\n\
\n\
--sim-request options:\n\
\x20 --tcp-service|-t service-address    to this TCP service (default\n\
\x20                                     192.168.0.10:80)\n\
\x20 --udp-service|-u service-address    to this UDP service, whose real servers\n\
\x20                                     echo a datagram after their name\n\
\x20 --from CIP                          from this simulated client (default\n\
\x20                                     192.168.0.101)\n\
\x20 --count|-n N                        open N connections, or send N\n\
\x20                                     datagrams (default 1)\n\
";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn help_is_ipvsadms_text_then_masqs_section() {
        for asked in ["-h", "--help", "-h --bogus"] {
            let text = answer(&args(asked)).expect("help is answered locally");
            let ipvsadm = masq_ctl::help::usage(PROGRAM);
            assert_eq!(text.strip_prefix(ipvsadm.as_str()), Some(MASQ_SECTION));
        }
    }

    #[test]
    fn version_keeps_ipvsadms_line_first() {
        for asked in ["-v", "--version"] {
            let text = answer(&args(asked)).expect("the version is answered locally");
            let mut lines = text.lines();
            assert_eq!(
                lines.next(),
                Some(masq_ctl::help::VERSION.trim_end()),
                "scripts read ipvsadm's line"
            );
            let own = lines.next().unwrap();
            assert!(
                own.starts_with(&format!("masqadm v{} (", env!("CARGO_PKG_VERSION"))),
                "{own}"
            );
            assert_eq!(lines.next(), None);
        }
    }

    #[test]
    fn everything_else_goes_to_masqd() {
        for asked in [
            "",
            "-L -n",
            "-L -h",
            "--check",
            "--trace",
            "-x",
            "-A -t 1.2.3.4:80",
        ] {
            assert_eq!(answer(&args(asked)), None, "{asked:?}");
        }
    }

    #[test]
    fn the_section_fits_ipvsadms_columns() {
        // Descriptions start in ipvsadm's column (the 39th), and lines end by the 80th.
        for line in MASQ_SECTION.lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
            let described = line.len() > 38 && line.starts_with("  -");
            if described {
                assert_eq!(&line[37..38], " ", "{line:?}");
                assert_ne!(&line[38..39], " ", "{line:?}");
            }
        }
    }
}
