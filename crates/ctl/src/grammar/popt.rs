//! A faithful model of the parts of popt 1.19's `poptGetNextOpt` that ipvsadm exercises.
//!
//! Why not clap (or getopt): ipvsadm's observable behaviour *is* popt's. Popt takes the next
//! word as a required argument even when it starts with `-` (`-w -1` is a weight of "-1"),
//! leaves an optional argument alone when the next word starts with `-` (`-p -s rr`),
//! accepts `--opt=value`, `-tvalue` and `-t=value`, collects non-option words anywhere as
//! "leftovers" (how `--set 900 120 300` gets its values), stops option processing at `--`,
//! never abbreviates long options, and names the whole offending word in its errors
//! (`-Lq: unknown option`). None of that can be configured into clap.

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgKind {
    /// `POPT_ARG_NONE`.
    Flag,
    /// `POPT_ARG_STRING`.
    Required,
    /// `POPT_ARG_STRING | POPT_ARGFLAG_OPTIONAL` (only `-p`).
    Optional,
}

/// One row of ipvsadm's popt option table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptDef<T: Copy> {
    pub long: &'static str,
    pub short: Option<u8>,
    pub arg: ArgKind,
    pub id: T,
}

/// A popt error code, printed as `<word>: <poptStrerror>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoptError {
    /// `POPT_ERROR_NOARG`.
    MissingArgument,
    /// `POPT_ERROR_BADOPT`.
    UnknownOption,
    /// `POPT_ERROR_UNWANTEDARG` (`--list=x`, `-L=x`).
    UnwantedArgument,
}

impl PoptError {
    /// popt's `poptStrerror` text.
    pub(crate) fn text(self) -> &'static str {
        match self {
            PoptError::MissingArgument => "missing argument",
            PoptError::UnknownOption => "unknown option",
            PoptError::UnwantedArgument => "option does not take an argument",
        }
    }
}

/// What one `poptGetNextOpt` call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next<T> {
    /// An option and its value (None for flags and for an absent optional value).
    Opt(T, Option<String>),
    /// No more options (popt's -1).
    End,
    /// A popt error (popt's values below -1).
    Error(PoptError),
}

/// The parser state: the argument vector, the cursor, and the leftovers collected so far.
pub(crate) struct Popt<'a, T: Copy> {
    table: &'a [OptDef<T>],
    args: &'a [String],
    /// Index of the next word to read (popt's `os->next`).
    next: usize,
    /// Rest of a bundle of short options still to process: (word index, byte offset).
    next_char: Option<(usize, usize)>,
    /// Set by `--`: every later word is a leftover.
    rest_leftover: bool,
    leftovers: Vec<String>,
    leftover_cursor: usize,
}

impl<'a, T: Copy> Popt<'a, T> {
    /// A parser over `args` (argv without `argv[0]`).
    pub(crate) fn new(table: &'a [OptDef<T>], args: &'a [String]) -> Self {
        Popt {
            table,
            args,
            next: 0,
            next_char: None,
            rest_leftover: false,
            leftovers: Vec::new(),
            leftover_cursor: 0,
        }
    }

    /// `poptBadOption(con, POPT_BADOPTION_NOALIAS)`: the last word consumed.
    pub(crate) fn bad_option(&self) -> &str {
        self.next
            .checked_sub(1)
            .and_then(|i| self.args.get(i))
            .map(String::as_str)
            .unwrap_or("")
    }

    /// `poptGetArg`: the next leftover word.
    pub(crate) fn next_leftover(&mut self) -> Option<String> {
        let v = self.leftovers.get(self.leftover_cursor).cloned();
        if v.is_some() {
            self.leftover_cursor += 1;
        }
        v
    }

    fn find_long(&self, name: &str) -> Option<&'a OptDef<T>> {
        self.table.iter().find(|o| o.long == name)
    }

    fn find_short(&self, c: u8) -> Option<&'a OptDef<T>> {
        self.table.iter().find(|o| o.short == Some(c))
    }

    /// `poptGetNextOpt`.
    pub(crate) fn next_opt(&mut self) -> Next<T> {
        loop {
            let mut long_arg: Option<String> = None;
            let opt: &OptDef<T>;
            if let Some((word, off)) = self.next_char.take() {
                let bytes = self.args.get(word).map(String::as_bytes).unwrap_or(&[]);
                let Some(&c) = bytes.get(off) else {
                    return Next::Error(PoptError::UnknownOption);
                };
                let Some(found) = self.find_short(c) else {
                    return Next::Error(PoptError::UnknownOption);
                };
                opt = found;
                if off + 1 < bytes.len() {
                    self.next_char = Some((word, off + 1));
                }
            } else {
                let Some(word) = self.args.get(self.next) else {
                    return Next::End;
                };
                let index = self.next;
                self.next += 1;
                if self.rest_leftover || !word.starts_with('-') || word == "-" {
                    self.leftovers.push(word.clone());
                    continue;
                }
                if word == "--" {
                    self.rest_leftover = true;
                    continue;
                }
                if let Some(body) = word.strip_prefix("--") {
                    let (name, value) = match body.split_once('=') {
                        Some((n, v)) => (n, Some(v.to_string())),
                        None => (body, None),
                    };
                    let Some(found) = self.find_long(name) else {
                        return Next::Error(PoptError::UnknownOption);
                    };
                    opt = found;
                    long_arg = value;
                } else {
                    // A single dash: popt would try a one-dash long option first, but no
                    // ipvsadm option has POPT_ARGFLAG_ONEDASH, so it is a bundle of shorts.
                    self.next_char = Some((index, 1));
                    continue;
                }
            }
            return self.take_value(opt, long_arg);
        }
    }

    fn take_value(&mut self, opt: &OptDef<T>, long_arg: Option<String>) -> Next<T> {
        let rest_of_bundle = self
            .next_char
            .and_then(|(w, off)| self.args.get(w).map(|s| (s, off)))
            .map(|(s, off)| s.get(off..).unwrap_or("").to_string());
        match opt.arg {
            ArgKind::Flag => {
                if long_arg.is_some() || rest_of_bundle.is_some_and(|r| r.starts_with('=')) {
                    return Next::Error(PoptError::UnwantedArgument);
                }
                Next::Opt(opt.id, None)
            }
            ArgKind::Required | ArgKind::Optional => {
                if let Some(v) = long_arg {
                    return Next::Opt(opt.id, Some(v));
                }
                if let Some(rest) = rest_of_bundle {
                    // `-tVALUE` and `-t=VALUE` both give VALUE; the bundle ends here.
                    self.next_char = None;
                    let v = rest.strip_prefix('=').unwrap_or(&rest).to_string();
                    return Next::Opt(opt.id, Some(v));
                }
                match self.args.get(self.next) {
                    None if opt.arg == ArgKind::Optional => Next::Opt(opt.id, None),
                    None => Next::Error(PoptError::MissingArgument),
                    Some(w) if opt.arg == ArgKind::Optional && w.starts_with('-') => {
                        Next::Opt(opt.id, None)
                    }
                    Some(w) => {
                        let v = w.clone();
                        self.next += 1;
                        Next::Opt(opt.id, Some(v))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &[OptDef<char>] = &[
        OptDef {
            long: "list",
            short: Some(b'L'),
            arg: ArgKind::Flag,
            id: 'L',
        },
        OptDef {
            long: "numeric",
            short: Some(b'n'),
            arg: ArgKind::Flag,
            id: 'n',
        },
        OptDef {
            long: "tcp-service",
            short: Some(b't'),
            arg: ArgKind::Required,
            id: 't',
        },
        OptDef {
            long: "persistent",
            short: Some(b'p'),
            arg: ArgKind::Optional,
            id: 'p',
        },
        OptDef {
            long: "set",
            short: None,
            arg: ArgKind::Flag,
            id: 'S',
        },
    ];

    fn run(words: &[&str]) -> (Vec<Next<char>>, Vec<String>, String) {
        let args: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        let mut p = Popt::new(T, &args);
        let mut out = Vec::new();
        loop {
            let n = p.next_opt();
            let stop = !matches!(n, Next::Opt(..));
            out.push(n);
            if stop {
                break;
            }
        }
        let bad = p.bad_option().to_string();
        let mut left = Vec::new();
        while let Some(l) = p.next_leftover() {
            left.push(l);
        }
        (out, left, bad)
    }

    #[test]
    fn bundles_and_values() {
        let (o, _, _) = run(&["-Ln", "-t1.2.3.4:80", "-t=x", "--tcp-service=y", "-t", "-z"]);
        assert_eq!(
            o,
            vec![
                Next::Opt('L', None),
                Next::Opt('n', None),
                Next::Opt('t', Some("1.2.3.4:80".into())),
                Next::Opt('t', Some("x".into())),
                Next::Opt('t', Some("y".into())),
                Next::Opt('t', Some("-z".into())),
                Next::End
            ]
        );
    }

    #[test]
    fn optional_value() {
        let (o, _, _) = run(&["-p", "-n", "-p", "60", "-p"]);
        assert_eq!(
            o,
            vec![
                Next::Opt('p', None),
                Next::Opt('n', None),
                Next::Opt('p', Some("60".into())),
                Next::Opt('p', None),
                Next::End
            ]
        );
    }

    #[test]
    fn leftovers_and_double_dash() {
        let (o, left, _) = run(&["--set", "10", "-", "20", "--", "-L"]);
        assert_eq!(o, vec![Next::Opt('S', None), Next::End]);
        assert_eq!(left, vec!["10", "-", "20", "-L"]);
    }

    #[test]
    fn errors_name_the_whole_word() {
        let (o, _, bad) = run(&["-Lq"]);
        assert_eq!(o.last(), Some(&Next::Error(PoptError::UnknownOption)));
        assert_eq!(bad, "-Lq");
        let (o, _, bad) = run(&["-L", "--bogus=1"]);
        assert_eq!(o.last(), Some(&Next::Error(PoptError::UnknownOption)));
        assert_eq!(bad, "--bogus=1");
        let (o, _, bad) = run(&["-n", "-t"]);
        assert_eq!(o.last(), Some(&Next::Error(PoptError::MissingArgument)));
        assert_eq!(bad, "-t");
        let (o, _, bad) = run(&["--list=1"]);
        assert_eq!(o.last(), Some(&Next::Error(PoptError::UnwantedArgument)));
        assert_eq!(bad, "--list=1");
        let (o, _, _) = run(&["-L=1"]);
        assert_eq!(o.last(), Some(&Next::Error(PoptError::UnwantedArgument)));
        let (o, _, bad) = run(&["--lis"]);
        assert_eq!(o.last(), Some(&Next::Error(PoptError::UnknownOption)));
        assert_eq!(bad, "--lis");
        let (o, _, _) = run(&["-é"]);
        assert_eq!(o.last(), Some(&Next::Error(PoptError::UnknownOption)));
    }
}
