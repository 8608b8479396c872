//! Rules files: loaded at start (and on a reload, into a scratch director first) like
//! `ipvsadm-restore`, naming the line that fails; written back on a clean stop like
//! `ipvsadm-save`, atomically (a temporary file renamed over the old one) so a crash
//! mid-save never leaves a truncated file.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use masq_core::control::Control;
use masq_ctl::{Env, NumericOnly};

/// Applies an `ipvsadm -S` style file, line by line, as `ipvsadm-restore` would (lines
/// starting with `#` are comments, the word `ipvsadm` is ignored). The first line that
/// fails stops the start with its line number, its text and ipvsadm's message for it; the
/// lines before it stay applied.
///
/// # Errors
/// When the file cannot be read or a line fails.
pub fn load(path: &Path, director: &dyn Control) -> Result<()> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading rules file {}", path.display()))?;
    apply_text(&text, &path.display().to_string(), director)
}

/// [`load`] for rules already read; `origin` names them in the error (`origin:line:`).
///
/// # Errors
/// When a line fails.
pub fn apply_text(text: &str, origin: &str, director: &dyn Control) -> Result<()> {
    let env = Env {
        program: "masqd",
        stdin: None,
        names: &masq_ctl::SystemNames,
    };
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let words: Vec<String> = line
            .split([' ', '\t', '\r'])
            .filter(|w| !w.is_empty() && *w != "ipvsadm")
            .map(String::from)
            .collect();
        if words.is_empty() {
            continue;
        }
        let outcome = masq_ctl::run(&words, &env, director);
        if outcome.code != 0 {
            bail!(
                "{origin}:{}: `{}`: {}",
                n + 1,
                line.trim(),
                outcome.stderr.trim()
            );
        }
    }
    Ok(())
}

/// Writes the current rules (`-S -n`) to `path` atomically.
///
/// # Errors
/// When the temporary file cannot be written, synced or renamed.
pub fn save(path: &Path, director: &dyn Control) -> Result<()> {
    let env = Env {
        program: "masqd",
        stdin: None,
        names: &NumericOnly,
    };
    let outcome = masq_ctl::run(&["-S".to_string(), "-n".to_string()], &env, director);
    if outcome.code != 0 {
        bail!("saving rules: {}", outcome.stderr.trim());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("rules path has no file name")?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(outcome.stdout.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing rules file {}", path.display()))
}
