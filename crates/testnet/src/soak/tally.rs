//! What a soak counts, interval by interval: operations of each kind with their latencies,
//! chaos events, misses and watch notifications; and the line each interval prints.

use std::fmt;

use cairn_report::quantile;
use serde::Serialize;

/// Operations of one kind in an interval.
#[derive(Clone, Debug, Default)]
pub(super) struct Kind {
    attempted: u64,
    succeeded: u64,
    micros: Vec<u64>,
}

impl Kind {
    pub(super) fn record(&mut self, ok: bool, micros: u64) {
        self.attempted += 1;
        self.succeeded += u64::from(ok);
        self.micros.push(micros);
    }

    fn merge(&mut self, other: &Kind) {
        self.attempted += other.attempted;
        self.succeeded += other.succeeded;
        self.micros.extend_from_slice(&other.micros);
    }

    fn figures(&self) -> KindFigures {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let ms = |q| quantile(&sorted, q) as f64 / 1000.0;
        KindFigures {
            attempted: self.attempted,
            succeeded: self.succeeded,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
        }
    }
}

/// What happened in an interval (or a whole run, added up).
#[derive(Clone, Debug, Default)]
pub(super) struct Tally {
    pub(super) put: Kind,
    pub(super) get: Kind,
    pub(super) delete: Kind,
    pub(super) watch: Kind,
    pub(super) kills: u64,
    pub(super) restarts: u64,
    pub(super) stops: u64,
    pub(super) starts: u64,
    pub(super) missed: Vec<String>,
    /// Get attempts that failed, by why ([`GetFailures`]).
    pub(super) get_failures: GetFailures,
    pub(super) notifications: u64,
    pub(super) out_of_order: u64,
}

/// Why get attempts failed, counted apart: a wrong answer is evidence, an error is not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GetFailures {
    /// The node found a copy the ledger rules out: an older version, or a tombstone a later
    /// put replaced.
    pub wrong_copy: u64,
    /// The node found nothing, though the ledger says a version lives.
    pub not_found: u64,
    /// The get itself failed (its node stopped, its worker killed, a timeout).
    pub errors: u64,
}

impl GetFailures {
    fn merge(&mut self, other: &GetFailures) {
        self.wrong_copy += other.wrong_copy;
        self.not_found += other.not_found;
        self.errors += other.errors;
    }
}

impl Tally {
    pub(super) fn merge(&mut self, other: &Tally) {
        self.put.merge(&other.put);
        self.get.merge(&other.get);
        self.delete.merge(&other.delete);
        self.watch.merge(&other.watch);
        self.kills += other.kills;
        self.restarts += other.restarts;
        self.stops += other.stops;
        self.starts += other.starts;
        self.missed.extend_from_slice(&other.missed);
        self.get_failures.merge(&other.get_failures);
        self.notifications += other.notifications;
        self.out_of_order += other.out_of_order;
    }

    pub(super) fn figures(&self, minute: u64, seconds: f64) -> Interval {
        Interval {
            minute,
            seconds,
            put: self.put.figures(),
            get: self.get.figures(),
            delete: self.delete.figures(),
            watch: self.watch.figures(),
            kills: self.kills,
            restarts: self.restarts,
            stops: self.stops,
            starts: self.starts,
            missed: self.missed.len() as u64,
            missed_keys: self.missed.clone(),
            get_failures: self.get_failures,
            notifications: self.notifications,
            out_of_order: self.out_of_order,
        }
    }
}

/// Operations of one kind, as reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KindFigures {
    /// Operations started.
    pub attempted: u64,
    /// Operations that succeeded (a get: found what the ledger allows; a watch: reported at
    /// least one version).
    pub succeeded: u64,
    /// Median latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency, in milliseconds.
    pub p99_ms: f64,
}

/// One interval of a soak (a minute, in a long run), or the whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Interval {
    /// Which interval, from 1 (0 for the whole run).
    pub minute: u64,
    /// How long it lasted, in seconds.
    pub seconds: f64,
    /// Signed puts (new names and new versions).
    pub put: KindFigures,
    /// Gets checked against the ledger: each attempt, on each node tried.
    pub get: KindFigures,
    /// Deletes.
    pub delete: KindFigures,
    /// Watches.
    pub watch: KindFigures,
    /// Worker processes killed with SIGKILL.
    pub kills: u64,
    /// Killed workers started again on their data directories.
    pub restarts: u64,
    /// Single nodes stopped gracefully.
    pub stops: u64,
    /// Stopped nodes started again on their data directories.
    pub starts: u64,
    /// Checks where no node tried (up to three, all running) found what the ledger allows:
    /// unavailable at that moment; the final sweep decides whether it was lost.
    pub missed: u64,
    /// What each miss sought and found: key, name, publisher, what the gets found.
    pub missed_keys: Vec<String>,
    /// Why the get attempts that failed did.
    pub get_failures: GetFailures,
    /// Versions the watches reported.
    pub notifications: u64,
    /// Watches that reported a version twice or out of order.
    pub out_of_order: u64,
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = |name: &str, k: &KindFigures| {
            let pct = 100.0 * k.succeeded as f64 / k.attempted.max(1) as f64;
            format!(
                "{name} {} {pct:.1}% {:.0}/{:.0} ms",
                k.attempted, k.p50_ms, k.p99_ms
            )
        };
        write!(
            f,
            "{} | {} (wrong copy {}, not found {}, errors {}) | {} | {} | kills {} restarts {} stops {} starts {} | missed {} | notifications {} (out of order {})",
            kind("put", &self.put),
            kind("get", &self.get),
            self.get_failures.wrong_copy,
            self.get_failures.not_found,
            self.get_failures.errors,
            kind("del", &self.delete),
            kind("watch", &self.watch),
            self.kills,
            self.restarts,
            self.stops,
            self.starts,
            self.missed,
            self.notifications,
            self.out_of_order
        )?;
        for missed in &self.missed_keys {
            write!(f, "\n    missed {missed}")?;
        }
        Ok(())
    }
}
