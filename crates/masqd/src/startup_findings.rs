//! What masqd warned about while it started, kept for `masqadm --check`.
//!
//! A start-up warning names a setup that masqd runs with but that breaks or weakens
//! something (replies with no way to a client, a kernel left free to answer a VIP, a page
//! open to other hosts). Each is logged once, as `PROBLEM (fix: FIX)`, and kept here, so
//! that `--check` reports the same thing with the same fix instead of saying "no problems
//! found" beside a log full of warnings. A finding lasts until masqd restarts (it was
//! read at start, or is a choice of the command line) unless the operator can clear it
//! while masqd runs: then it carries a test of whether it still holds, re-run by every
//! check.

/// One start-up warning: what masqd noticed, and how to fix it.
pub struct Finding {
    problem: String,
    fix: String,
    /// For a condition that can be cleared while masqd runs: whether it still holds.
    still_holds: Option<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl Finding {
    /// A finding that lasts until masqd restarts.
    pub fn new(problem: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            problem: problem.into(),
            fix: fix.into(),
            still_holds: None,
        }
    }

    /// The same finding, reported only while `still_holds` says so.
    pub fn while_true(self, still_holds: impl Fn() -> bool + Send + Sync + 'static) -> Finding {
        Finding {
            still_holds: Some(Box::new(still_holds)),
            ..self
        }
    }

    /// What is wrong, and what it breaks.
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// The command or change that fixes it.
    pub fn fix(&self) -> &str {
        &self.fix
    }

    fn holds(&self) -> bool {
        self.still_holds.as_ref().is_none_or(|test| test())
    }
}

/// Every finding of the start, in the order they were made.
#[derive(Default)]
pub struct StartupFindings(Vec<Finding>);

impl StartupFindings {
    /// Logs `finding` as a warning, with its fix, and keeps it for `--check`.
    pub fn warn(&mut self, finding: Finding) {
        tracing::warn!("{} (fix: {})", finding.problem, finding.fix);
        self.0.push(finding);
    }

    /// [`StartupFindings::warn`] for each of `findings`.
    pub fn warn_all(&mut self, findings: impl IntoIterator<Item = Finding>) {
        for finding in findings {
            self.warn(finding);
        }
    }

    /// The findings that still hold now.
    pub fn current(&self) -> impl Iterator<Item = &Finding> {
        self.0.iter().filter(|f| f.holds())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::Arc;

    use super::*;

    fn problems(findings: &StartupFindings) -> Vec<&str> {
        findings.current().map(Finding::problem).collect()
    }

    #[test]
    fn findings_are_kept_in_order_with_their_fixes() {
        let mut findings = StartupFindings::default();
        assert_eq!(problems(&findings), Vec::<&str>::new());
        findings.warn(Finding::new("first", "fix one"));
        findings.warn_all([Finding::new("second", "fix two")]);
        assert_eq!(problems(&findings), ["first", "second"]);
        let fixes: Vec<&str> = findings.current().map(Finding::fix).collect();
        assert_eq!(fixes, ["fix one", "fix two"]);
    }

    #[test]
    fn a_finding_the_operator_cleared_is_no_longer_reported() {
        let merging = Arc::new(AtomicBool::new(true));
        let mut findings = StartupFindings::default();
        findings.warn(Finding::new("until restart", "restart"));
        let still = merging.clone();
        findings.warn(Finding::new("GRO is on", "ethtool").while_true(move || still.load(Relaxed)));
        assert_eq!(problems(&findings), ["until restart", "GRO is on"]);
        merging.store(false, Relaxed);
        assert_eq!(problems(&findings), ["until restart"]);
        // It comes back if the condition does: the test runs at every check.
        merging.store(true, Relaxed);
        assert_eq!(problems(&findings), ["until restart", "GRO is on"]);
    }
}
