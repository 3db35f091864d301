//! cairn-report: one measuring vocabulary for every cairn experiment. The real test network
//! (`cairn-testnet`, `cairn testnet`) and the simulator (`cairn-sim`) report the same fields,
//! computed the same way, so their figures can be set side by side. A crate of its own, apart
//! from the protocol and from the test network, so that the simulator can use it without
//! linking the tokio node.
//!
//! - [`quantile`] is the one quantile rule (nearest rank on the sorted samples);
//! - [`Operations`] sums up one kind of operation (puts or gets) from its [`Sample`]s;
//! - [`Report`] is what a run of the standard workload measured;
//! - [`reader`] is the one rule for choosing the node that gets an item: any live node but
//!   its publisher, so that no get is answered from the publisher's own store.
//!
//! Pure arithmetic: no clock, no file. Callers measure, this crate only summarises.

#![deny(missing_docs)]

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// The value at quantile `q` (0 to 1) of `sorted` (ascending), by nearest rank; the default
/// for no samples.
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let at = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// The 50th, 95th and 99th percentiles of some samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Quantiles {
    /// The quantiles of `samples` (in any order).
    pub fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Quantiles {
            p50: quantile(&samples, 0.5),
            p95: quantile(&samples, 0.95),
            p99: quantile(&samples, 0.99),
        }
    }
}

/// One operation as measured: whether it did what was asked, and what it cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// It succeeded (a put was acknowledged; a get returned exactly the item put).
    pub ok: bool,
    /// From start to completion (wall time in a real network, virtual time in a simulation).
    pub latency: Duration,
    /// Round trips on the chain that led to the result.
    pub hops: u32,
    /// Requests it sent to other nodes.
    pub requests: u32,
}

/// One kind of operation, summed up. Latency and hops are over the successful ones; requests
/// per operation over all.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Operations {
    /// Operations run.
    pub attempted: usize,
    /// Operations that succeeded.
    pub succeeded: usize,
    /// `succeeded / attempted`, in percent (100 when none ran).
    pub success_percent: f64,
    /// Latency of the successful ones, in milliseconds.
    pub latency_ms: Quantiles,
    /// Hops of the successful ones.
    pub hops: Quantiles,
    /// Requests sent per operation.
    pub requests_per_op: f64,
}

impl Operations {
    /// The summary of `samples`.
    pub fn of(samples: &[Sample]) -> Self {
        let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok).collect();
        let requests: u64 = samples.iter().map(|s| u64::from(s.requests)).sum();
        Operations {
            attempted: samples.len(),
            succeeded: ok.len(),
            success_percent: percent(ok.len(), samples.len()),
            latency_ms: Quantiles::of(
                ok.iter()
                    .map(|s| s.latency.as_secs_f64() * 1_000.0)
                    .collect(),
            ),
            hops: Quantiles::of(ok.iter().map(|s| f64::from(s.hops)).collect()),
            requests_per_op: requests as f64 / samples.len().max(1) as f64,
        }
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        100.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// What a run of the standard workload measured: join N nodes, put items from random nodes,
/// get each from a node other than its publisher.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Nodes in the network.
    pub nodes: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// Seconds from the first node starting to the last join ending.
    pub setup_s: f64,
    /// Joins per second over the setup.
    pub joins_per_s: f64,
    /// Joins that failed.
    pub failed_joins: usize,
    /// The puts.
    pub puts: Operations,
    /// Mean replicas per acknowledged put (the publisher included).
    pub mean_replicas: f64,
    /// The gets.
    pub gets: Operations,
    /// Memory per node, in bytes: the growth of the process's resident memory over the run,
    /// divided by the nodes.
    pub memory_per_node_bytes: u64,
}

impl Report {
    /// Fills in the setup figures from its duration.
    pub fn set_setup(&mut self, setup: Duration) {
        self.setup_s = setup.as_secs_f64();
        self.joins_per_s = self.nodes.saturating_sub(1) as f64 / self.setup_s.max(1e-9);
    }
}

/// The line of one kind of operation, as both reports print it.
impl fmt::Display for Operations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (l, h) = (&self.latency_ms, &self.hops);
        write!(
            f,
            "{}/{} ok ({:.2}%), latency p50 {:.1} ms p95 {:.1} ms p99 {:.1} ms, hops p50 {} p99 {}, {:.1} requests each",
            self.succeeded,
            self.attempted,
            self.success_percent,
            l.p50,
            l.p95,
            l.p99,
            h.p50,
            h.p99,
            self.requests_per_op
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  nodes            {} (seed {})", self.nodes, self.seed)?;
        writeln!(
            f,
            "  setup            {:.2} s ({:.0} joins/s, {} failed)",
            self.setup_s, self.joins_per_s, self.failed_joins
        )?;
        writeln!(
            f,
            "  puts             {}, mean {:.1} replicas",
            self.puts, self.mean_replicas
        )?;
        writeln!(f, "  gets             {}", self.gets)?;
        writeln!(
            f,
            "  memory           {:.1} KiB per node",
            self.memory_per_node_bytes as f64 / 1024.0
        )
    }
}

/// The node that gets an item published by `publisher`: one of `live` other than the
/// publisher, chosen by `draw(n)` (a uniform index below `n`); the publisher only if it is
/// the one live node.
pub fn reader(publisher: usize, live: &[usize], mut draw: impl FnMut(usize) -> usize) -> usize {
    let others = live.iter().filter(|n| **n != publisher).count();
    if others == 0 {
        return publisher;
    }
    let pick = draw(others).min(others - 1);
    live.iter()
        .copied()
        .filter(|n| *n != publisher)
        .nth(pick)
        .unwrap_or(publisher)
}

/// Resident memory in bytes from the text of Linux's `/proc/self/statm` (pages of 4 KiB);
/// 0 if it does not parse.
pub fn resident_bytes_from_statm(statm: &str) -> u64 {
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4_096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&sorted, 0.5), 51);
        assert_eq!(quantile(&sorted, 0.99), 99);
        assert_eq!(quantile(&sorted, 1.0), 100);
        assert_eq!(quantile::<u32>(&[], 0.5), 0);
        let q = Quantiles::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((q.p50, q.p99), (2.0, 3.0));
    }

    #[test]
    fn operations_count_failures_in_success_and_cost_but_not_in_latency() {
        let sample = |ok, ms, hops| Sample {
            ok,
            latency: Duration::from_millis(ms),
            hops,
            requests: 4,
        };
        let ops = Operations::of(&[
            sample(true, 10, 1),
            sample(true, 30, 3),
            sample(false, 900, 9),
        ]);
        assert_eq!((ops.attempted, ops.succeeded), (3, 2));
        assert!((ops.success_percent - 66.666).abs() < 0.01);
        assert_eq!(
            ops.latency_ms.p99, 30.0,
            "the failure's latency is not counted"
        );
        assert_eq!(ops.hops.p99, 3.0);
        assert_eq!(ops.requests_per_op, 4.0);
        assert_eq!(Operations::of(&[]).success_percent, 100.0);
    }

    #[test]
    fn the_reader_is_never_the_publisher_unless_alone() {
        let live = [0, 3, 5, 8];
        for draw in 0..3 {
            let picked = reader(3, &live, |n| {
                assert_eq!(n, 3);
                draw
            });
            assert_ne!(picked, 3);
            assert!(live.contains(&picked));
        }
        assert_eq!(reader(3, &[3], |_| 0), 3);
        assert_eq!(
            reader(1, &[0, 1], |_| 7),
            0,
            "an out-of-range draw is clamped"
        );
    }

    #[test]
    fn resident_memory_from_statm() {
        assert_eq!(
            resident_bytes_from_statm("1000 250 30 1 0 200 0"),
            1_024_000
        );
        assert_eq!(resident_bytes_from_statm(""), 0);
    }
}
