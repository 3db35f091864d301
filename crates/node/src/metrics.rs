//! The node's Prometheus metrics, served as OpenMetrics text at `GET /metrics` on the API.
//!
//! [`Metrics`] is the one place a node counts: the transport tasks count connections and
//! refusals here as they happen, the driver counts requests, lookups, commits and
//! housekeeping from the core's traces, and the gauges (items, bytes, contacts, network size,
//! subscriptions, watches, connections open) are set from the node's status just before each
//! scrape. `GET /v1/status` reads the same counters, so the two never disagree.
//!
//! Every metric is named `cairn_*`; the list, with what each label means, is in the README
//! ("Watch it work").

use std::time::Duration;

mod storage;

use cairn_core::{Duty, Operation, QueryOutcome, StoreLimits};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A request type (its `type` on the wire) and how it ended: `ok`, `error_<code>`, `failed`
/// or `timeout`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) request: &'static str,
    pub(crate) outcome: std::borrow::Cow<'static, str>,
}

/// A request type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabel {
    pub(crate) request: &'static str,
}

/// A command (`get`, `put`, `find_node`, `bootstrap`, `watch`, `replicate`, `refresh`) and how
/// it ended (`ok`, `not_found`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LookupLabels {
    pub(crate) operation: &'static str,
    pub(crate) outcome: &'static str,
}

/// A command.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OperationLabel {
    pub(crate) operation: &'static str,
}

/// Why something was refused or closed, or which way a connection goes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub(crate) reason: &'static str,
}

/// Which way a connection goes: `outbound` (dialed) or `inbound` (accepted).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DirectionLabel {
    pub(crate) direction: &'static str,
}

/// How a store commit ended: `ok` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub(crate) outcome: &'static str,
}

/// A reachability status: `public`, `private` or `unknown`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    pub(crate) status: &'static str,
}

/// A mode: `server` or `client`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModeLabel {
    pub(crate) mode: &'static str,
}

/// An address family: `ipv4` or `ipv6`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FamilyLabel {
    pub(crate) family: &'static str,
}

/// A housekeeping duty: `expire`, `republish`, `replicate`, `refresh`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DutyLabel {
    pub(crate) duty: &'static str,
}

/// Every request's `type` on the wire ([`cairn_core::Request::name`]).
const REQUESTS: [&str; 6] = [
    "ping",
    "find_node",
    "find_value",
    "store",
    "listen",
    "unlisten",
];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, from 1 ms to about 33 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Hops, 1 to 12.
fn hops() -> Histogram {
    Histogram::new((1..=12).map(f64::from))
}

/// Why datagrams are dropped: the reader's checks (`too_large`, `handshake_rate`), then the
/// plane's (`cairn_core::datagram::PlaneStats`), and a QUIC packet no stream took.
pub(crate) const DATAGRAM_REFUSALS: [&str; 10] = [
    "too_large",
    "handshake_rate",
    "malformed",
    "bad_signature",
    "bad_tag",
    "replayed",
    "stray",
    "amplification_limit",
    "unproven_store",
    "no_stream",
];

/// A node's metrics. Each field is a handle on the registered metric: cloning one shares it.
#[derive(Debug)]

pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) requests_received: Family<RequestLabels, Counter>,
    pub(crate) requests_sent: Family<RequestLabels, Counter>,
    pub(crate) request_duration: Histograms<RequestLabel>,
    pub(crate) lookups: Family<LookupLabels, Counter>,
    /// Every command ended, whatever its operation and outcome: the sum of [`Self::lookups`],
    /// kept apart for `/v1/status` (not registered: the family is what a scrape shows).
    pub(crate) lookups_ended: Counter,
    pub(crate) lookup_duration: Histograms<OperationLabel>,
    pub(crate) lookup_hops: Histograms<OperationLabel>,
    /// Outgoing connections opened (TCP and cairn handshake).
    pub(crate) connections_opened: Counter,
    /// Incoming connections accepted.
    pub(crate) connections_accepted: Counter,
    /// Outgoing connections that could not be made.
    pub(crate) dial_failures: Counter,
    /// Connections not opened or not kept because the process's connection budget was spent.
    pub(crate) budget_exhausted: Counter,
    /// Incoming connections refused: `max_inbound` busy ones were served.
    pub(crate) connections_refused: Counter,
    /// Incoming connections refused: their host held `max_inbound_per_host`.
    pub(crate) connections_refused_per_host: Counter,
    /// Incoming connections closed to make room for a newcomer.
    pub(crate) connections_evicted: Counter,
    /// Incoming connections closed: no handshake within `handshake_timeout`.
    pub(crate) handshake_timeouts: Counter,
    /// Requests answered 429 because their host passed `request_rate`.
    pub(crate) requests_rate_limited: Counter,
    /// Stores answered 429 because their host passed `store_rate`.
    pub(crate) stores_rate_limited: Counter,
    /// Stores answered 429 because their subnet held its share of the store.
    pub(crate) stores_over_share: Counter,
    /// Frames that were not valid messages.
    pub(crate) invalid_messages: Counter,
    pub(crate) connections_open: Family<DirectionLabel, Gauge>,
    pub(crate) items: Gauge,
    pub(crate) item_bytes: Gauge,
    /// The store's `max_items`, set once: `cairn_items` over it is how full the store is.
    store_max_items: Gauge,
    /// The store's `max_store_bytes`, set once.
    store_max_bytes: Gauge,
    pub(crate) commits: Family<OutcomeLabel, Counter>,
    pub(crate) commit_duration: Histogram,
    /// The durable store's storage health.
    pub(crate) storage: storage::StorageMetrics,
    pub(crate) contacts: Gauge,
    pub(crate) network_size: Gauge,
    pub(crate) subscriptions: Gauge,
    pub(crate) watches: Gauge,
    pub(crate) uptime: Gauge,
    pub(crate) housekeeping: Family<DutyLabel, Counter>,
    /// Trace records the core dropped because the driver fell behind.
    pub(crate) traces_dropped: Counter,
    /// Routing-table snapshots that could not be saved.
    pub(crate) snapshot_failures: Counter,
    /// Incoming connections refused, by reason (the counters above are its members).
    refused: Family<ReasonLabel, Counter>,
    /// Requests refused by a rate limit or quota, by reason (likewise).
    limited: Family<ReasonLabel, Counter>,
    /// Datagrams in and out, by direction.
    pub(crate) datagrams: Family<DirectionLabel, Counter>,
    /// Datagrams dropped, by reason (`docs/protocol.md` section 11; `SECURITY.md`).
    pub(crate) datagrams_refused: Family<ReasonLabel, Counter>,
    /// Requests sent again over datagrams, and requests handed to TCP instead.
    pub(crate) datagram_retransmits: Counter,
    pub(crate) datagram_fallbacks: Counter,
    /// Sessions dropped after a request on them heard nothing back at all.
    pub(crate) silent_sessions: Counter,
    /// Requests over datagrams the node stopped waiting for while they were still tried.
    pub(crate) datagram_cancels: Counter,
    /// Datagram sessions held now.
    pub(crate) sessions: Gauge,
    /// Times the node's address as its peers see it changed (or became known), by family.
    pub(crate) observed_changes: Family<FamilyLabel, Counter>,
    /// 1 for the node's reachability now, 0 for the others.
    pub(crate) reachability: Family<StatusLabel, Gauge>,
    /// This node's probes, by outcome.
    pub(crate) reach_probes: Family<OutcomeLabel, Counter>,
    /// Peers' checks served, by outcome.
    pub(crate) probes_served: Family<OutcomeLabel, Counter>,
    /// Switches of an auto node, by the mode switched to.
    pub(crate) mode_switches: Family<ModeLabel, Counter>,
}

impl Metrics {
    /// The metrics of a node whose store has these `limits`.
    pub(crate) fn new(limits: &StoreLimits) -> Self {
        let mut registry = Registry::with_prefix("cairn");
        // A member of a family is a handle on the family's own counter.
        let refused = Family::<ReasonLabel, Counter>::default();
        let limited = Family::<ReasonLabel, Counter>::default();
        let member = |family: &Family<ReasonLabel, Counter>, reason| {
            family.get_or_create_owned(&ReasonLabel { reason })
        };
        let m = Metrics {
            requests_received: Family::default(),
            requests_sent: Family::default(),
            request_duration: Family::new_with_constructor(seconds),
            lookups: Family::default(),
            lookups_ended: Counter::default(),
            lookup_duration: Family::new_with_constructor(seconds),
            lookup_hops: Family::new_with_constructor(hops),
            connections_opened: Counter::default(),
            connections_accepted: Counter::default(),
            dial_failures: Counter::default(),
            budget_exhausted: Counter::default(),
            connections_refused: member(&refused, "max_inbound"),
            connections_refused_per_host: member(&refused, "per_host"),
            connections_evicted: Counter::default(),
            handshake_timeouts: member(&refused, "handshake_timeout"),
            requests_rate_limited: member(&limited, "request_rate"),
            stores_rate_limited: member(&limited, "store_rate"),
            stores_over_share: member(&limited, "store_share"),
            invalid_messages: Counter::default(),
            connections_open: Family::default(),
            items: Gauge::default(),
            item_bytes: Gauge::default(),
            store_max_items: Gauge::default(),
            store_max_bytes: Gauge::default(),
            commits: Family::default(),
            commit_duration: seconds(),
            storage: storage::StorageMetrics::default(),
            contacts: Gauge::default(),
            network_size: Gauge::default(),
            subscriptions: Gauge::default(),
            watches: Gauge::default(),
            uptime: Gauge::default(),
            housekeeping: Family::default(),
            traces_dropped: Counter::default(),
            snapshot_failures: Counter::default(),
            refused,
            limited,
            datagrams: Family::default(),
            datagrams_refused: Family::default(),
            datagram_retransmits: Counter::default(),
            datagram_fallbacks: Counter::default(),
            silent_sessions: Counter::default(),
            datagram_cancels: Counter::default(),
            sessions: Gauge::default(),
            observed_changes: Family::default(),
            reachability: Family::default(),
            reach_probes: Family::default(),
            probes_served: Family::default(),
            mode_switches: Family::default(),
            registry: Registry::default(),
        };
        let limit = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        m.store_max_items.set(limit(limits.max_items));
        m.store_max_bytes.set(limit(limits.max_bytes));
        m.register(&mut registry);
        m.precreate();
        Metrics { registry, ..m }
    }

    /// Makes every labelled series whose labels are known ahead of time, at zero: a fresh
    /// node's scrape then lists every family the README documents, and an alert on a rate or
    /// a ratio has a series to work on before the first event (Prometheus has no series for
    /// a family without samples). Labels that are not a closed set (a request's `error_<code>`
    /// outcomes) appear when first seen.
    fn precreate(&self) {
        for operation in Operation::ALL.map(Operation::as_str) {
            for outcome in QueryOutcome::ALL.map(QueryOutcome::as_str) {
                drop(
                    self.lookups
                        .get_or_create(&LookupLabels { operation, outcome }),
                );
            }
            let label = OperationLabel { operation };
            drop(self.lookup_duration.get_or_create(&label));
            drop(self.lookup_hops.get_or_create(&label));
        }
        for request in REQUESTS {
            let ok = || RequestLabels {
                request,
                outcome: std::borrow::Cow::Borrowed("ok"),
            };
            drop(self.requests_received.get_or_create(&ok()));
            drop(self.requests_sent.get_or_create(&ok()));
            drop(
                self.request_duration
                    .get_or_create(&RequestLabel { request }),
            );
        }
        for direction in ["inbound", "outbound"] {
            drop(
                self.connections_open
                    .get_or_create(&DirectionLabel { direction }),
            );
        }
        for direction in ["inbound", "outbound"] {
            drop(self.datagrams.get_or_create(&DirectionLabel { direction }));
        }
        for reason in DATAGRAM_REFUSALS {
            drop(
                self.datagrams_refused
                    .get_or_create(&ReasonLabel { reason }),
            );
        }
        for family in cairn_core::Family::ALL.map(cairn_core::Family::as_str) {
            drop(self.observed_changes.get_or_create(&FamilyLabel { family }));
        }
        for outcome in ["ok", "failed"] {
            drop(self.commits.get_or_create(&OutcomeLabel { outcome }));
        }
        for status in ["public", "private", "unknown"] {
            let gauge = self.reachability.get_or_create(&StatusLabel { status });
            gauge.set(i64::from(status == "unknown"));
        }
        for outcome in ["asked", "sent", "received", "failed", "ignored"] {
            drop(self.reach_probes.get_or_create(&OutcomeLabel { outcome }));
        }
        for outcome in ["relayed", "relay_refused", "sent", "refused", "unsent"] {
            drop(self.probes_served.get_or_create(&OutcomeLabel { outcome }));
        }
        for mode in ["server", "client"] {
            drop(self.mode_switches.get_or_create(&ModeLabel { mode }));
        }
        for duty in Duty::ALL.map(Duty::as_str) {
            drop(self.housekeeping.get_or_create(&DutyLabel { duty }));
        }
        self.storage.update(&crate::store::StorageStatus::default());
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "requests_received",
            "Requests from peers answered, by type and outcome",
            self.requests_received.clone(),
        );
        r.register(
            "requests_sent",
            "Requests to peers, by type and how they ended",
            self.requests_sent.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Round trip of requests to peers that were answered",
            self.request_duration.clone(),
        );
        r.register(
            "lookups",
            "Commands finished, by operation and outcome (housekeeping's included)",
            self.lookups.clone(),
        );
        r.register(
            "lookup_duration_seconds",
            "Time from a command's start to its end",
            self.lookup_duration.clone(),
        );
        r.register(
            "lookup_hops",
            "Round trips on the longest chain that led to a command's result",
            self.lookup_hops.clone(),
        );
        self.register_connections(r);
        r.register(
            "items",
            "Items held (tombstones included)",
            self.items.clone(),
        );
        r.register(
            "item_bytes",
            "Bytes of the items held, as counted against max_store_bytes",
            self.item_bytes.clone(),
        );
        r.register(
            "store_max_items",
            "Items the store holds at most (max_items)",
            self.store_max_items.clone(),
        );
        r.register(
            "store_max_bytes",
            "Bytes of items the store holds at most (max_store_bytes)",
            self.store_max_bytes.clone(),
        );
        r.register(
            "commits",
            "Group commits of the durable store, by outcome",
            self.commits.clone(),
        );
        self.storage.register(r);
        r.register(
            "snapshot_failures",
            "Routing-table snapshots that could not be saved to the data directory",
            self.snapshot_failures.clone(),
        );
        r.register(
            "commit_duration_seconds",
            "Time to write and sync one group commit",
            self.commit_duration.clone(),
        );
        r.register(
            "routing_table_contacts",
            "Contacts in the routing table",
            self.contacts.clone(),
        );
        r.register(
            "network_size_estimate",
            "Nodes in the network, estimated from the closest contacts' distances",
            self.network_size.clone(),
        );
        r.register(
            "subscriptions",
            "listen subscriptions peers hold here",
            self.subscriptions.clone(),
        );
        r.register("watches", "Keys this node watches", self.watches.clone());
        r.register(
            "uptime_seconds",
            "Seconds since the node started",
            self.uptime.clone(),
        );
        r.register(
            "housekeeping_runs",
            "Housekeeping duties run, by duty",
            self.housekeeping.clone(),
        );
        r.register(
            "traces_dropped",
            "Trace records dropped because the driver fell behind (metrics undercount)",
            self.traces_dropped.clone(),
        );
    }

    fn register_connections(&self, r: &mut Registry) {
        let counters = [
            (
                "connections_opened",
                "Outgoing connections opened (TCP and handshake)",
                &self.connections_opened,
            ),
            (
                "connections_accepted",
                "Incoming connections accepted",
                &self.connections_accepted,
            ),
            (
                "connections_failed",
                "Outgoing connections that could not be made",
                &self.dial_failures,
            ),
            (
                "connection_budget_exhausted",
                "Connections not opened or not kept: the process's connection budget was spent",
                &self.budget_exhausted,
            ),
            (
                "connections_evicted",
                "Incoming connections closed to make room for a newcomer",
                &self.connections_evicted,
            ),
            (
                "invalid_messages",
                "Frames from peers that were not valid messages",
                &self.invalid_messages,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        r.register(
            "connections_refused",
            "Incoming connections refused or closed before use, by reason",
            self.refused.clone(),
        );
        r.register(
            "refusals",
            "Requests answered 429 by a rate limit or a quota, by reason",
            self.limited.clone(),
        );
        r.register(
            "connections_open",
            "Connections open now, by direction",
            self.connections_open.clone(),
        );
        r.register(
            "datagrams",
            "Datagrams received (inbound) and sent (outbound)",
            self.datagrams.clone(),
        );
        r.register(
            "datagrams_refused",
            "Datagrams dropped, by reason",
            self.datagrams_refused.clone(),
        );
        r.register(
            "datagram_retransmits",
            "Requests sent again over datagrams after their retransmission timeout",
            self.datagram_retransmits.clone(),
        );
        r.register(
            "datagram_fallbacks",
            "Requests sent over TCP instead of datagrams (a stream needed, too large, or a peer that does not answer datagrams)",
            self.datagram_fallbacks.clone(),
        );
        r.register(
            "datagram_cancels",
            "Requests over datagrams the node stopped waiting for (past their deadline) while they were still being tried: sent no more, and not sent over TCP instead",
            self.datagram_cancels.clone(),
        );
        r.register(
            "datagram_silent_sessions",
            "Datagram sessions dropped because a request on them ran out of tries with nothing heard back (a peer that forgot them, or a NAT that moved this node to another port)",
            self.silent_sessions.clone(),
        );
        r.register(
            "sessions",
            "Datagram sessions held now",
            self.sessions.clone(),
        );
        r.register(
            "observed_changes",
            "Times the node's address as its peers see it changed or became known, by family",
            self.observed_changes.clone(),
        );
        r.register(
            "reachability",
            "1 for the node's reachability now (public, private or unknown), 0 for the others",
            self.reachability.clone(),
        );
        r.register(
            "reach_probes",
            "This node's reachability probes, by outcome (asked, sent, received, failed, ignored)",
            self.reach_probes.clone(),
        );
        r.register(
            "probes_served",
            "Peers' reachability checks served, by outcome (relayed, relay_refused, sent, refused, unsent)",
            self.probes_served.clone(),
        );
        r.register(
            "mode_switches",
            "Times an auto node switched mode, by the mode it switched to",
            self.mode_switches.clone(),
        );
    }

    /// A datagram was dropped for `reason`.
    pub(crate) fn datagram_refused(&self, reason: &'static str) {
        self.datagrams_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// The OpenMetrics text of every metric.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// A request sent to a peer ended.
    pub(crate) fn request_ended(
        &self,
        request: &'static str,
        outcome: std::borrow::Cow<'static, str>,
        rtt: Option<Duration>,
    ) {
        self.requests_sent
            .get_or_create(&RequestLabels { request, outcome })
            .inc();
        if let Some(rtt) = rtt {
            self.request_duration
                .get_or_create(&RequestLabel { request })
                .observe(rtt.as_secs_f64());
        }
    }
}
