//! Logging to standard error, for a person (`--log-format text`, the default) or for a log
//! system (`--log-format json`, one JSON object a line), every line naming the node once its
//! id is known ([`set_node_id`]).
//!
//! The node's tasks are spawned inside `cairn_node`, out of reach of a span entered here, so
//! the id is added by the formatter of every event instead: a `node_id` field at the top of
//! each JSON object (the full id, as `cairn id` prints it), and in text a `node=` prefix with
//! its first 16 hex digits.

use std::fmt;
use std::sync::OnceLock;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For a person: `TIME LEVEL target: message key=value...`.
    #[default]
    Text,
    /// For a log system: one JSON object a line, with `timestamp`, `level`, `target`,
    /// `fields` (the message and its values), the spans, and `node_id` once known.
    Json,
}

/// The node's id in hex, set once when the node has started.
static NODE_ID: OnceLock<String> = OnceLock::new();

/// Names the node on every log line from now on.
pub fn set_node_id(id: impl fmt::Display) {
    let _ = NODE_ID.set(id.to_string());
}

/// Logs to standard error at `default` level unless `RUST_LOG` says otherwise.
pub fn init(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .event_format(WithNodeId(tracing_subscriber::fmt::format()))
            .init(),
        LogFormat::Json => builder
            .json()
            .event_format(WithNodeId(tracing_subscriber::fmt::format().json()))
            .init(),
    }
}

/// An event format that adds the node's id to what `F` writes.
struct WithNodeId<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithNodeId<tracing_subscriber::fmt::format::Format<F>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    tracing_subscriber::fmt::format::Format<F>: FormatEvent<S, N>,
    F: IsJson,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(id) = NODE_ID.get() else {
            return self.0.format_event(ctx, writer, event);
        };
        if !F::JSON {
            write!(writer, "node={} ", id.get(..16).unwrap_or(id))?;
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The JSON format writes one object and a newline: add the id as its last member.
        match line.trim_end().strip_suffix('}') {
            Some(open) => writeln!(writer, "{open},\"node_id\":\"{id}\"}}"),
            None => writer.write_str(&line),
        }
    }
}

/// Whether a format writes JSON, told by its type.
trait IsJson {
    const JSON: bool;
}

impl IsJson for tracing_subscriber::fmt::format::Full {
    const JSON: bool = false;
}

impl IsJson for tracing_subscriber::fmt::format::Json {
    const JSON: bool = true;
}
