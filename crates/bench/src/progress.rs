//! A one-line progress bar on stderr for long runs: drawn only on a terminal, only once a
//! run has taken more than a second, at most ten times a second, and erased at the end.
//! Hand-rolled: one line of text does not need a dependency.

use std::io::Write;
use std::time::{Duration, Instant};

const SHOW_AFTER: Duration = Duration::from_secs(1);
const REDRAW_EVERY: Duration = Duration::from_millis(100);
const WIDTH: usize = 28;

/// The bar.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    started: Instant,
    last_draw: Option<Instant>,
    total: usize,
}

impl Progress {
    /// A bar over `total` steps (schedulers), drawn only when `enabled`.
    pub fn new(total: usize, enabled: bool) -> Self {
        Progress {
            enabled,
            started: Instant::now(),
            last_draw: None,
            total: total.max(1),
        }
    }

    /// Step `done` (0-based) is running `label` and is `fraction` through.
    pub fn update(&mut self, done: usize, label: &str, fraction: f64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let elapsed = now - self.started;
        if elapsed < SHOW_AFTER || self.last_draw.is_some_and(|t| now - t < REDRAW_EVERY) {
            return;
        }
        self.last_draw = Some(now);
        let overall = ((done as f64 + fraction.clamp(0.0, 1.0)) / self.total as f64).min(1.0);
        let filled = (overall * WIDTH as f64).round() as usize;
        let left = if overall > 0.02 {
            format!(
                ", ~{:.0} s left",
                elapsed.as_secs_f64() * (1.0 - overall) / overall
            )
        } else {
            String::new()
        };
        let line = format!(
            "\r[{}{}] {:3.0}%  {} ({}/{})  {:.1} s{}\x1b[K",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            overall * 100.0,
            label,
            done + 1,
            self.total,
            elapsed.as_secs_f64(),
            left
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }

    /// Erases the bar if it was drawn.
    pub fn finish(&mut self) {
        if self.last_draw.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"\r\x1b[K");
            let _ = err.flush();
        }
    }
}
