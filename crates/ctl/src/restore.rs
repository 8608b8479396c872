//! `ipvsadm -R`: the input is cut into lines and words exactly as `config_stream_read` does,
//! and each line runs as a command line of its own.
//!
//! Rules worth knowing: words are separated by space, tab, CR and newline;
//! every word equal to `ipvsadm` is dropped (so saved shell lines restore); there is no
//! comment syntax (`#` is an ordinary word, and fails as one); a line that fails validation
//! ends the restore with that exit code, while a line the director refuses prints its error
//! and the restore goes on; the exit code is that of the last line run.

/// How one line of a restore ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStatus {
    /// The line returned to the restore loop with this status (success, a director error,
    /// or one of popt's own errors).
    Continue(i32),
    /// The line ended the ipvsadm process with this exit code (`fail()`, `Try ...`, `-h`,
    /// `-v`, a listing error): the restore stops here.
    Exit(i32),
}

/// Cuts restore input into lines of words, reproducing `config_stream_read`'s scanf loop.
pub struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
}

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Lines<'a> {
    /// A reader over the whole restore input.
    pub fn new(input: &'a str) -> Self {
        Lines {
            input: input.as_bytes(),
            pos: 0,
        }
    }
}

impl Iterator for Lines<'_> {
    /// The words of one line, `ipvsadm` words removed (possibly none).
    type Item = Vec<String>;

    fn next(&mut self) -> Option<Vec<String>> {
        let mut words = Vec::new();
        // Each round is one fscanf("%[^ \t\n\r]%1[ \t\n\r]"); end of input is its EOF.
        while let Some(&first) = self.input.get(self.pos) {
            if is_separator(first) {
                // No word matched: skip blanks up to the end of the line. Reaching the end
                // of input here drops the words gathered so far for this line — a quirk of
                // ipvsadm's reader that only shows when the last line ends in two blanks and
                // no newline.
                loop {
                    match self.input.get(self.pos) {
                        None => return None,
                        Some(b'\n') => {
                            self.pos += 1;
                            return Some(words);
                        }
                        Some(&b) if is_separator(b) => self.pos += 1,
                        Some(_) => break,
                    }
                }
                continue;
            }
            let start = self.pos;
            while self.input.get(self.pos).is_some_and(|b| !is_separator(*b)) {
                self.pos += 1;
            }
            let word = String::from_utf8_lossy(&self.input[start..self.pos]).into_owned();
            if word != "ipvsadm" {
                words.push(word);
            }
            // The one separator scanf consumes with the word.
            if let Some(&sep) = self.input.get(self.pos) {
                self.pos += 1;
                if sep == b'\n' {
                    return Some(words);
                }
            }
        }
        (!words.is_empty()).then_some(words)
    }
}

/// Runs every non-empty line of `input` through `run_line` until one ends the process.
/// Returns how the whole restore ends: [`LineStatus::Exit`] from the line that stopped it, or
/// [`LineStatus::Continue`] with the status of the last line run (0 if none ran).
pub fn drive(input: &str, mut run_line: impl FnMut(&[String]) -> LineStatus) -> LineStatus {
    let mut result = 0;
    for words in Lines::new(input) {
        if words.is_empty() {
            continue;
        }
        match run_line(&words) {
            LineStatus::Continue(code) => result = code,
            exit @ LineStatus::Exit(_) => return exit,
        }
    }
    LineStatus::Continue(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<Vec<String>> {
        Lines::new(s).collect()
    }

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn words_and_lines() {
        assert_eq!(
            lines("-A -t 1.2.3.4:80 -s rr\n\n  ipvsadm -C\r\n\t-L\t-n"),
            vec![
                v(&["-A", "-t", "1.2.3.4:80", "-s", "rr"]),
                v(&[]),
                v(&["-C"]),
                v(&["-L", "-n"])
            ]
        );
        assert_eq!(lines("ipvsadm\n-C\n"), vec![v(&[]), v(&["-C"])]);
        assert_eq!(lines("# comment\n"), vec![v(&["#", "comment"])]);
        assert_eq!(lines(""), Vec::<Vec<String>>::new());
        assert_eq!(lines("-C "), vec![v(&["-C"])]);
        // ipvsadm's reader drops a last line ending in two blanks without a newline.
        assert_eq!(lines("-Z\n-C  "), vec![v(&["-Z"])]);
        assert_eq!(lines("a\u{b}b c"), vec![v(&["a\u{b}b", "c"])]);
    }

    #[test]
    fn drive_stops_on_exit_and_keeps_last_status() {
        let mut seen = Vec::new();
        let r = drive("ok\nkernel\nok\n", |w| {
            seen.push(w[0].clone());
            if w[0] == "kernel" {
                LineStatus::Continue(255)
            } else {
                LineStatus::Continue(0)
            }
        });
        assert_eq!(r, LineStatus::Continue(0));
        assert_eq!(seen, vec!["ok", "kernel", "ok"]);
        let r = drive("ok\nkernel\n", |w| {
            LineStatus::Continue(if w[0] == "kernel" { 255 } else { 0 })
        });
        assert_eq!(r, LineStatus::Continue(255));
        let mut n = 0;
        let r = drive("a\nfail\nb\n", |w| {
            n += 1;
            if w[0] == "fail" {
                LineStatus::Exit(2)
            } else {
                LineStatus::Continue(0)
            }
        });
        assert_eq!((r, n), (LineStatus::Exit(2), 2));
        assert_eq!(
            drive("\n\n", |_| LineStatus::Exit(9)),
            LineStatus::Continue(0)
        );
    }
}
