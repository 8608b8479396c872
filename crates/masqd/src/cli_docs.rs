//! masqd's command line as shells and the manual see it.
//!
//! `masqd --print-completions bash|zsh|fish` writes the completion script clap derives
//! from masqd's own parser; `completions/` in the repository holds their output (what the
//! package installs), and the tests here keep those files, and the manual page
//! `docs/man/masqd.8`, in step with the parser. The flag is read before the parser, which
//! would otherwise insist on `--vip-iface` and `--dip-iface`, and is no option of the
//! director's own: it is not in `--help`.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// The flag that asks for a completion script.
const FLAG: &str = "--print-completions";

/// Prints the completion script when masqd's command line asks for one, and says how
/// masqd should exit; None when masqd should go on and parse its options.
pub fn print_if_requested() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match requested(&args)? {
        Ok(shell) => {
            print!("{}", script(shell));
            Some(ExitCode::SUCCESS)
        }
        Err(message) => {
            eprintln!("masqd: {message}");
            Some(ExitCode::from(2))
        }
    }
}

/// The shell `masqd --print-completions SHELL` asks a script for: None when the command
/// line is anything else; an error naming the shells for an unknown one.
fn requested(args: &[String]) -> Option<Result<Shell, String>> {
    match args {
        [flag, shell] if flag == FLAG => Some(parse_shell(shell)),
        [flag, ..] if flag == FLAG => Some(Err(format!("usage: masqd {FLAG} bash|zsh|fish"))),
        _ => None,
    }
}

fn parse_shell(name: &str) -> Result<Shell, String> {
    match name {
        "bash" => Ok(Shell::Bash),
        "zsh" => Ok(Shell::Zsh),
        "fish" => Ok(Shell::Fish),
        _ => Err(format!(
            "{FLAG}: no completions for `{name}' (bash, zsh or fish)"
        )),
    }
}

/// The completion script for `shell`.
fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut crate::Args::command(), "masqd", &mut out);
    String::from_utf8(out).expect("clap_complete writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn repo_file(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    fn read(path: &str) -> String {
        std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Every `--long` option masqd's parser knows.
    fn long_options() -> Vec<String> {
        crate::Args::command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .chain(["--help".into(), "--version".into()])
            .collect()
    }

    #[test]
    fn the_committed_completions_are_what_the_parser_generates() {
        for (shell, file) in [
            (Shell::Bash, "completions/masqd.bash"),
            (Shell::Zsh, "completions/_masqd"),
            (Shell::Fish, "completions/masqd.fish"),
        ] {
            assert!(
                read(file) == script(shell),
                "{file} is not what the parser generates: regenerate it with \
                 `masqd {FLAG} {shell} > {file}`"
            );
        }
    }

    /// Whether `text` names `option` as a whole word (`--web` is not in `--web-admin`).
    fn names(text: &str, option: &str) -> bool {
        text.match_indices(option).any(|(at, _)| {
            !text[at + option.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
        })
    }

    #[test]
    fn the_manual_page_names_every_option_and_value() {
        // roff writes a hyphen in an option's name as `\-`.
        let page = read("docs/man/masqd.8").replace("\\-", "-");
        let missing: Vec<String> = long_options()
            .into_iter()
            .filter(|o| !names(&page, o))
            .collect();
        assert!(missing.is_empty(), "docs/man/masqd.8 lacks {missing:?}");
        let with_values = crate::Args::command();
        let with_values = with_values
            .get_arguments()
            .filter(|a| a.get_action().takes_values());
        for arg in with_values {
            for value in arg.get_possible_values() {
                let bold = format!("\\fB{}\\fR", value.get_name());
                assert!(
                    page.contains(&bold),
                    "docs/man/masqd.8 lacks {bold} (a value of --{})",
                    arg.get_long().unwrap_or_default()
                );
            }
        }
    }

    #[test]
    fn the_flag_is_read_before_the_parser() {
        let args = |line: &str| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            requested(&args("--print-completions zsh")),
            Some(Ok(Shell::Zsh))
        );
        assert!(matches!(
            requested(&args("--print-completions tcsh")),
            Some(Err(e)) if e.contains("bash, zsh or fish")
        ));
        assert!(matches!(
            requested(&args("--print-completions")),
            Some(Err(_))
        ));
        assert_eq!(requested(&args("--vip-iface eth0 --dip-iface eth1")), None);
        assert_eq!(requested(&[]), None);
        assert!(script(Shell::Bash).contains("--vip-iface"));
    }
}
