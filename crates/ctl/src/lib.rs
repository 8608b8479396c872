//! The ipvsadm language, shared by `masqd` and `masqadm` so they can never disagree.
//!
//! [`run`] takes an ipvsadm 1.31 argument vector, parses it exactly as ipvsadm (with popt)
//! does, executes it against a director through [`masq_core::control::Control`], and returns
//! the exact stdout, stderr and exit code ipvsadm would have produced on a kernel it talks to
//! over netlink (the transcripts in `tests/data/` and `crates/ctl/tests/ipvsadm/data/` are
//! what it is checked against).
//!
//! The pieces are public for reuse: [`grammar`] (argv → [`grammar::Command`]),
//! [`format`](mod@format) (every listing), [`restore`] (`-R` input handling), [`errors`] (the
//! errno → message table), [`help`] (`-h` / `-v`), [`names`] (port and host names), and
//! [`request`] (the control socket's message, shared by `masqd` and `masqadm`).
//!
//! Where masq differs from ipvsadm, on purpose:
//! * tunnelling is IPIP only: `-a`/`-e` with `-i --tun-type gue|gre` is refused after all
//!   of ipvsadm's own validation, with [`NO_TUNNEL_TYPE`] and exit 255, like a director
//!   error (`-m`, `-g`, ipvsadm's default, and `-i` of the default type are forwarded);
//! * `-b ''` (a list without any flag) fails with ``invalid scheduler flag `'`` (exit 2)
//!   where ipvsadm crashes on a NULL pointer.
//!
//! `-v` and the first line of `-h` keep ipvsadm's literal `ipvsadm v1.31 …` text: ipvsadm
//! prints a fixed string there, not its `argv[0]`, which it substitutes only in the usage lines
//! (see [`help`]).
#![deny(unsafe_code)]

mod c_parse;
pub mod errors;
mod exec;
pub mod format;
pub mod grammar;
pub mod help;
pub mod names;
pub mod request;
pub mod restore;
pub mod trace;

use masq_core::control::Control;

pub use exec::NO_TUNNEL_TYPE;
pub use names::{Names, NumericOnly, SystemNames};

/// What one ipvsadm invocation printed and returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Everything written to standard output.
    pub stdout: String,
    /// Everything written to standard error.
    pub stderr: String,
    /// The exit status (0, 1, 2 or 255).
    pub code: i32,
    /// The lines of a `-R` input that failed, with their numbers. ipvsadm prints only each
    /// line's own message, so masqadm prints nothing more; masqd logs them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_failures: Vec<String>,
}

/// Options of the environment that are not in argv.
pub struct Env<'a> {
    /// `argv[0]` as shown in messages and `-h` (e.g. `masqadm`).
    pub program: &'a str,
    /// The text `-R` reads (None: `-R` gets empty input).
    pub stdin: Option<&'a str>,
    /// Port and host name lookup.
    pub names: &'a dyn Names,
}

/// Runs one ipvsadm command line (argv WITHOUT `argv[0]`) against `director`.
pub fn run(args: &[String], env: &Env, director: &dyn Control) -> Outcome {
    let names = names::Memo::new(env.names);
    let ctx = exec::Ctx {
        program: env.program,
        stdin: env.stdin.unwrap_or(""),
        names: &names,
        director,
    };
    let mut out = Outcome::default();
    let status = exec::execute(args, &ctx, &mut out, false);
    out.code = match status {
        restore::LineStatus::Continue(code) | restore::LineStatus::Exit(code) => code,
    };
    out
}
