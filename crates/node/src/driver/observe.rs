//! What the driver makes of the core's trace records ([`Trace`]): metrics, a `tracing` span
//! per lookup (`RUST_LOG=cairn::lookup=debug` shows each from start to end, `=trace` each
//! hop too), and the dashboard's live [`Activity`].

use std::collections::HashMap;
use std::sync::Arc;

use cairn_core::{Id, Operation, QueryId, QueryOutcome, QueryStats, Time, Trace, error_label};
use tracing::Span;

use crate::activity::{Activity, Hub};
use crate::metrics::Metrics;
use crate::metrics::{DutyLabel, LookupLabels, OperationLabel, RequestLabels};

/// A command the observer has seen start and not yet end.
struct Running {
    target: Id,
    span: Span,
}

/// Turns trace records into metrics, log lines and activity. Holds one entry per running
/// command (the core's running commands bound it).
pub(super) struct Observer {
    metrics: Arc<Metrics>,
    hub: Arc<Hub>,
    /// This node's id, in hex: the `node` of its activity.
    node: String,
    running: HashMap<QueryId, Running>,
}

/// The first 16 hex digits of an id: enough to tell ids apart in a log line.
fn short(id: &Id) -> String {
    let mut hex = id.to_hex();
    hex.truncate(16);
    hex
}

impl Observer {
    pub(super) fn new(metrics: Arc<Metrics>, hub: Arc<Hub>, node: &Id) -> Self {
        Observer {
            metrics,
            hub,
            node: node.to_hex(),
            running: HashMap::new(),
        }
    }

    pub(super) fn record(&mut self, now: Time, trace: Trace) {
        match trace {
            Trace::QueryStarted {
                query,
                operation,
                target,
            } => self.started(query, operation, target),
            Trace::Asked {
                query,
                to,
                via,
                hop,
            } => {
                if let (Some(running), Some(to)) = (self.running.get(&query), to) {
                    tracing::trace!(target: "cairn::lookup", parent: &running.span, to = short(&to), via = via.as_ref().map(short), hop, "asked");
                }
                if let (true, Some(to)) = (self.hub.is_watched(), to) {
                    self.hub.publish(Activity::Hop {
                        node: self.node.clone(),
                        query: query.0,
                        from: via.map(|v| v.to_hex()),
                        to: to.to_hex(),
                        hop,
                    });
                }
            }
            Trace::Replied { query, from, ok } => {
                if let (true, Some(from)) = (self.hub.is_watched(), from) {
                    self.hub.publish(Activity::Reply {
                        node: self.node.clone(),
                        query: query.0,
                        from: from.to_hex(),
                        ok,
                    });
                }
            }
            Trace::QueryFinished {
                query,
                operation,
                outcome,
                stats,
            } => self.finished(now, query, operation, outcome, stats),
            Trace::RequestEnded {
                request,
                outcome,
                round_trip,
            } => self
                .metrics
                .request_ended(request, outcome.label(), round_trip),
            Trace::Housekeeping { duty, count } => {
                tracing::debug!(duty = duty.as_str(), count, "housekeeping");
                self.metrics
                    .housekeeping
                    .get_or_create(&DutyLabel {
                        duty: duty.as_str(),
                    })
                    .inc();
            }
        }
    }

    fn started(&mut self, query: QueryId, operation: Operation, target: Id) {
        let span = tracing::debug_span!(
            target: "cairn::lookup",
            "lookup",
            query = query.0,
            operation = operation.as_str(),
            key = short(&target),
            hops = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        tracing::debug!(target: "cairn::lookup", parent: &span, "started");
        if self.hub.is_watched() {
            self.hub.publish(Activity::Lookup {
                node: self.node.clone(),
                query: query.0,
                operation: operation.as_str().to_owned(),
                target: target.to_hex(),
            });
        }
        self.running.insert(query, Running { target, span });
    }

    fn finished(
        &mut self,
        now: Time,
        query: QueryId,
        operation: Operation,
        outcome: QueryOutcome,
        stats: QueryStats,
    ) {
        let labels = OperationLabel {
            operation: operation.as_str(),
        };
        let m = &self.metrics;
        m.lookups
            .get_or_create(&LookupLabels {
                operation: operation.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
        m.lookups_ended.inc();
        m.lookup_duration
            .get_or_create(&labels)
            .observe(stats.duration.as_secs_f64());
        if stats.hops > 0 {
            m.lookup_hops
                .get_or_create(&labels)
                .observe(f64::from(stats.hops));
        }
        let Some(running) = self.running.remove(&query) else {
            return;
        };
        let span = &running.span;
        span.record("hops", stats.hops);
        span.record("outcome", outcome.as_str());
        let ms = stats.duration.as_secs_f64() * 1000.0;
        tracing::debug!(target: "cairn::lookup", parent: span, requests = stats.requests, ms, "finished");
        let done = Activity::Done {
            node: self.node.clone(),
            query: query.0,
            operation: operation.as_str().to_owned(),
            target: running.target.to_hex(),
            outcome: outcome.as_str().to_owned(),
            hops: stats.hops,
            requests: stats.requests,
            ms,
            at: now.as_millis(),
        };
        // Finished user operations are kept for later readers; the rest only go live.
        if done.is_user_operation() || self.hub.is_watched() {
            self.hub.publish(done);
        }
    }

    /// A request from a peer was answered: `error` is the error code it was answered with.
    pub(super) fn request_received(&self, request: &'static str, error: Option<u16>) {
        let outcome = error.map_or(std::borrow::Cow::Borrowed("ok"), error_label);
        self.metrics
            .requests_received
            .get_or_create(&RequestLabels { request, outcome })
            .inc();
    }
}
