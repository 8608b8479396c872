//! Rules files: loaded at start like `ipvsadm-restore`, written back on a clean stop like
//! `ipvsadm-save`, atomically (a temporary file renamed over the old one) so a crash
//! mid-save never leaves a truncated file.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use masq_core::control::Control;
use masq_ctl::{Env, NumericOnly};

/// Applies an `ipvsadm -S` style file through `-R`, exactly as `masqadm -R < FILE` would.
///
/// # Errors
/// When the file cannot be read or a line fails (with ipvsadm's message for it).
pub fn load(path: &Path, director: &dyn Control) -> Result<()> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading rules file {}", path.display()))?;
    let env = Env {
        program: "masqd",
        stdin: Some(&text),
        names: &masq_ctl::SystemNames,
    };
    let outcome = masq_ctl::run(&["-R".to_string()], &env, director);
    if outcome.code != 0 {
        bail!(
            "rules file {} did not apply (exit {}): {}",
            path.display(),
            outcome.code,
            outcome.stderr.trim()
        );
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
