//! The durable store's storage health as metrics: a gauge of its state and counters of its
//! errors by kind and of its reopens, caught up from the store's [`StorageStatus`] before each
//! scrape (the store counts; these follow).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::OutcomeLabel;
use crate::store::{StorageState, StorageStatus};

/// A storage state: `ok`, `full`, `failed`, `recovering`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// A storage error's kind: `full`, `io`, `previous_io`, `other`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// `cairn_storage_state`, `cairn_storage_errors_total`, `cairn_storage_reopens_total`.
#[derive(Debug, Default)]
pub(crate) struct StorageMetrics {
    /// 1 for the state now, 0 for the others.
    state: Family<StateLabel, Gauge>,
    errors: Family<KindLabel, Counter>,
    /// Reopens by outcome, `ok` or `failed`.
    reopens: Family<OutcomeLabel, Counter>,
}

impl StorageMetrics {
    pub(crate) fn register(&self, r: &mut Registry) {
        r.register(
            "storage_state",
            "1 for the durable store's storage state (ok, full, failed, recovering), 0 else",
            self.state.clone(),
        );
        r.register(
            "storage_errors",
            "Storage errors of the durable store, by kind (full, io, previous_io, other)",
            self.errors.clone(),
        );
        r.register(
            "storage_reopens",
            "Reopens of the durable store's database after an error, by outcome",
            self.reopens.clone(),
        );
    }

    /// Brings the metrics up to `status`; a fresh node's (the default) makes every series.
    pub(crate) fn update(&self, status: &StorageStatus) {
        for state in StorageState::ALL {
            let label = StateLabel {
                state: state.as_str(),
            };
            self.state
                .get_or_create(&label)
                .set(i64::from(state == status.state));
        }
        let behind = |counter: &Counter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        for (kind, total) in status.errors.by_kind() {
            behind(&self.errors.get_or_create(&KindLabel { kind }), total);
        }
        for (outcome, total) in [("ok", status.reopens), ("failed", status.reopens_failed)] {
            behind(
                &self.reopens.get_or_create(&OutcomeLabel { outcome }),
                total,
            );
        }
    }
}
