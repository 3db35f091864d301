//! The client commands: `put`, `get`, `delete`, `watch`, `status` and `id`, over the node's
//! local HTTP API.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_node::api::MAX_TTL_SECS;
use cairn_node::client::{ApiClient, Fetched};
use cairn_node::identity::ApiToken;
use clap::Args;

use crate::DEFAULT_API;

/// Where the node's API is, and the token it may need.
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// Address of the node's local HTTP API, host:port.
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// The API token (needed for changes when the node's API is bound beyond loopback)
    /// [default: the contents of DATA_DIR/api.token].
    #[arg(
        long,
        env = "CAIRN_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// The node's data directory, to read its api.token from [default: the platform data
    /// directory + /cairn, read only when --api is a loopback address].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl ApiArgs {
    /// A client of the API these arguments name, with its token if one is found: --token
    /// or CAIRN_API_TOKEN, else DIR/api.token of --data-dir, else the default data
    /// directory's when the API is on loopback (a token of this machine's node is not sent
    /// to another machine unless asked for).
    pub async fn client(&self) -> anyhow::Result<ApiClient> {
        let addr = crate::resolve_addr(&self.api, "--api").await?;
        let token = match (&self.token, &self.data_dir) {
            (Some(token), _) => Some(ApiToken::new(token)),
            (None, Some(dir)) => ApiToken::load(dir)?,
            (None, None) if addr.ip().to_canonical().is_loopback() => {
                ApiToken::load(&crate::default_data_dir()).unwrap_or(None)
            }
            (None, None) => None,
        };
        Ok(ApiClient::new(addr).with_token(token))
    }
}

/// Arguments of `cairn put`.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// NAME then VALUE (signed), or just VALUE (with --immutable). A VALUE of `-` reads stdin.
    #[arg(value_name = "NAME [VALUE]")]
    args: Vec<String>,
    /// Publish an immutable item, keyed by the hash of its value, instead of a signed one.
    #[arg(long)]
    immutable: bool,
    /// Read the value from this file.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Publish an empty value on purpose (with no VALUE, standard input is then not read).
    /// Without it an empty value is refused, unless VALUE is `-`.
    #[arg(long)]
    empty: bool,
    /// How long the item lives: seconds, or a number with s, m, h or d, at most 3650d (ten
    /// years) (signed items only).
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    ttl: Option<u64>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `cairn get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// PUBLIC_KEY/NAME for a signed item, or a 128-digit hex KEY for any item.
    target: String,
    /// Write the value to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `cairn delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The NAME of an item this node published.
    name: String,
    /// How long the deletion is kept: seconds, or a number with s, m, h or d. Without it, for
    /// ever. A deletion that expires stops keeping old copies out, so give one only if it
    /// outlives every copy of the item (say, the item's own ttl). At most 3650d.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    ttl: Option<u64>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `cairn watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// PUBLIC_KEY/NAME for a signed item, or a 128-digit hex KEY for any item.
    target: String,
    /// Print each version as one JSON object per line (key, kind, seq, expires, value as hex,
    /// text when UTF-8).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Parses `90`, `90s`, `15m`, `2h` or `7d` into seconds, at most [`MAX_TTL_SECS`].
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90, 15m, 2h or 7d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h or d)"
            ));
        }
    };
    match n.checked_mul(scale) {
        Some(0) => Err(format!("{text:?}: a ttl is at least 1 second")),
        Some(secs) if secs <= MAX_TTL_SECS => Ok(secs),
        _ => Err(format!(
            "{text:?} is longer than the longest ttl, 3650d (ten years); for an item that never \
             expires, give no --ttl"
        )),
    }
}

/// The value to publish: VALUE, --file, or standard input (for `-` or no VALUE). An empty
/// one is refused unless `empty` (--empty) or VALUE `-` asked for it: a forgotten VALUE must
/// not publish nothing over the real value.
fn read_value(value: Option<&str>, file: Option<&PathBuf>, empty: bool) -> anyhow::Result<Bytes> {
    let bytes: Bytes = match (value, file) {
        (Some(_), Some(_)) => bail!("give the value as an argument or with --file, not both"),
        (None, Some(path)) => std::fs::read(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .into(),
        (Some(text), None) if text != "-" => Bytes::copy_from_slice(text.as_bytes()),
        (None, None) if empty => Bytes::new(),
        _ => {
            let stdin = std::io::stdin();
            if std::io::IsTerminal::is_terminal(&stdin) {
                eprintln!("cairn: reading the value from standard input; end it with Ctrl-D");
            }
            let mut bytes = Vec::new();
            stdin
                .lock()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            bytes.into()
        }
    };
    if bytes.is_empty() && !empty && value != Some("-") {
        bail!(
            "the value is empty{}: give VALUE, --file PATH or `-` for standard input, or \
             --empty to publish an empty value on purpose",
            if value.is_none() && file.is_none() {
                " (no VALUE, and nothing on standard input)"
            } else {
                ""
            }
        );
    }
    Ok(bytes)
}

/// `cairn put`.
pub async fn put(args: PutArgs) -> anyhow::Result<()> {
    let client = args.api.client().await?;
    let published = if args.immutable {
        if args.args.len() > 1 {
            bail!("--immutable takes one VALUE (or --file, or stdin), not a name");
        }
        if args.ttl.is_some() {
            bail!("--ttl applies to signed items only: immutable items never expire");
        }
        let value = read_value(
            args.args.first().map(String::as_str),
            args.file.as_ref(),
            args.empty,
        )?;
        client.put_immutable(value).await?
    } else {
        let (name, value) = match args.args.as_slice() {
            [name] => (name, None),
            [name, value] => (name, Some(value.as_str())),
            [] => bail!("missing NAME: cairn put NAME [VALUE | --file PATH | -], or --immutable"),
            _ => bail!("too many arguments: cairn put NAME [VALUE | --file PATH | -]"),
        };
        let value = read_value(value, args.file.as_ref(), args.empty)?;
        client.put(name, value, args.ttl).await?
    };
    match (&published.public_key, &published.name) {
        (Some(public_key), Some(name)) => println!("{public_key}/{name}"),
        _ => println!("{}", published.key),
    }
    eprintln!(
        "key {} stored on {} node(s)",
        published.key, published.replicas
    );
    Ok(())
}

/// `cairn get`.
pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    let client = args.api.client().await?;
    let fetched: Fetched = match args.target.split_once('/') {
        Some((public_key, name)) => client.get_signed(public_key, name).await?,
        None => client.get_key(&args.target).await?,
    };
    match &args.output {
        Some(path) => std::fs::write(path, &fetched.value)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&fetched.value)
                .context("cannot write to standard output")?;
            out.flush().context("cannot write to standard output")?;
        }
    }
    Ok(())
}

/// `cairn delete`.
pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let deleted = args
        .api
        .client()
        .await?
        .delete(&args.name, args.ttl)
        .await?;
    let public_key = deleted.public_key.unwrap_or_default();
    println!("{public_key}/{}", args.name);
    eprintln!(
        "deleted (seq {}); the deletion is stored on {} node(s)",
        deleted.seq.unwrap_or(0),
        deleted.replicas
    );
    Ok(())
}

/// `cairn watch`: prints each new version as it arrives, until interrupted or the node stops.
pub async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let mut stream = args.api.client().await?.watch(&args.target).await?;
    eprintln!("watching {} (Ctrl-C to stop)", args.target);
    while let Some(update) = stream.next().await {
        let update = update?;
        let mut out = std::io::stdout().lock();
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&update)?)?;
        } else if update.kind == "tombstone" {
            writeln!(out, "(deleted, seq {})", update.seq.unwrap_or(0))?;
        } else {
            match &update.text {
                Some(text) => writeln!(out, "{text}")?,
                None => writeln!(
                    out,
                    "({} bytes, hex {})",
                    update.value.len() / 2,
                    update.value
                )?,
            }
        }
        out.flush()?;
    }
    bail!("the node closed the watch (it stopped?)")
}

/// `cairn status`.
pub async fn status(args: ApiArgs) -> anyhow::Result<()> {
    let s = args.client().await?.status().await?;
    println!("node_id    {}", s.node_id);
    println!("network    {}", s.network);
    let listen: Vec<String> = s.listen_addrs.iter().map(ToString::to_string).collect();
    println!("listen     {}", listen.join(" "));
    println!("mode       {} ({})", s.mode, s.reachability.setting);
    let r = &s.reachability;
    println!(
        "reachable  {}: {} checks; probes {} asked, {} sent, {} received",
        r.status, r.checks, r.probes.asked, r.probes.sent, r.probes.received
    );
    let z = &r.rendezvous;
    if z.points > 0 || z.registered > 0 || z.introduced > 0 {
        println!(
            "rendezvous {} points of its own; {} nodes registered here, {} introduced, {} punches sent",
            z.points, z.registered, z.introduced, z.punches_sent
        );
    }
    println!("peers      {}", s.peers);
    println!(
        "size       ~{} nodes in the network (estimated)",
        s.network_size
    );
    println!("items      {}", s.items);
    println!("uptime_s   {}", s.uptime_s);
    println!("version    {}", s.version);
    println!(
        "watching   {} subscriptions held for peers, {} keys watched here",
        s.subscriptions, s.watches
    );
    // What the defences of SECURITY.md turned away since start.
    println!(
        "refused    {} connections (host limit), {} evicted, {} handshakes too slow",
        s.connections_refused_per_host, s.connections_evicted, s.handshake_timeouts
    );
    println!(
        "           {} requests and {} stores over rate, {} stores over share, {} contacts crowded out",
        s.requests_rate_limited, s.stores_rate_limited, s.stores_over_share, s.contacts_crowded_out
    );
    let d = &s.datagrams;
    if d.enabled {
        println!(
            "datagrams  {} sessions; {} received, {} sent; {} retransmitted, {} over TCP instead",
            d.sessions, d.received, d.sent, d.retransmits, d.fallbacks
        );
        let refused = d.too_large
            + d.handshake_rate
            + d.malformed
            + d.bad_signature
            + d.bad_tag
            + d.replayed
            + d.stray;
        println!(
            "           {refused} refused ({} over the handshake rate, {} replayed, {} bad tags), \
             {} not sent (amplification limit)",
            d.handshake_rate, d.replayed, d.bad_tag, d.amplification_limit
        );
    } else {
        println!("datagrams  off (TCP only, protocol version 1)");
    }
    if let Some(line) = storage_line(&s.storage) {
        println!("{line}");
    }
    for (family, r) in [
        ("ipv4", &s.reachability.ipv4),
        ("ipv6", &s.reachability.ipv6),
    ] {
        println!("{}", reachability_line(family, r));
    }
    Ok(())
}

/// What `cairn status` says of one address family: the address peers see, the mapping, and
/// the votes behind them.
fn reachability_line(family: &str, r: &cairn_node::FamilyReachability) -> String {
    let seen = match &r.observed {
        Some(addr) => format!("seen as {addr}"),
        None => "not seen yet".to_owned(),
    };
    format!(
        "{family:<10} {seen}, mapping {}, {} votes",
        r.mapping, r.votes
    )
}

/// What `cairn status` says of the node's storage when it is not ok: its state, since when,
/// and the last error.
fn storage_line(storage: &cairn_node::store::StorageStatus) -> Option<String> {
    use cairn_node::store::StorageState;
    let what = match storage.state {
        StorageState::Ok => return None,
        StorageState::Full => "FULL: the disk is full; stores are refused until space is freed",
        StorageState::Failed => {
            "FAILED: the store cannot write or read; it is reopened on a schedule"
        }
        StorageState::Recovering => {
            "RECOVERING: reopened after a full disk; it serves reads, and the next store \
             shows whether there is space"
        }
        _ => "not ok",
    };
    let since = storage
        .since
        .map(|s| format!(" since unix time {s}"))
        .unwrap_or_default();
    let error = storage
        .last_error
        .as_deref()
        .map(|e| format!("\n           last error: {e}"))
        .unwrap_or_default();
    Some(format!(
        "storage    {what}{since} ({} reopens so far){error}",
        storage.reopens
    ))
}

/// `cairn id`.
/// Arguments of `cairn ping`.
#[derive(Args, Debug)]
pub struct PingArgs {
    /// The node's ed25519 public key, 64 hex digits (`cairn id` prints it).
    public_key: String,
    #[command(flatten)]
    api: ApiArgs,
}

pub async fn ping(args: PingArgs) -> anyhow::Result<()> {
    let report = args.api.client().await?.ping_key(&args.public_key).await?;
    let via = report
        .via
        .map(|via| format!(" via rendezvous {via}"))
        .unwrap_or_default();
    // The node's clock counts whole milliseconds: so does the round trip.
    println!(
        "{} at {}{via}: {:.0} ms",
        report.route.as_str(),
        report.addr,
        report.rtt_ms
    );
    Ok(())
}

pub async fn connect(args: PingArgs) -> anyhow::Result<()> {
    let stream = args
        .api
        .client()
        .await?
        .connect_stream(&args.public_key)
        .await?;
    eprintln!(
        "cairn: connected to {} ({})",
        args.public_key,
        stream.route().unwrap_or("direct")
    );
    stream.pipe(tokio::io::stdin(), tokio::io::stdout()).await?;
    Ok(())
}

pub async fn listen(args: ApiArgs) -> anyhow::Result<()> {
    let listening = args.client().await?.listen().await?;
    eprintln!("cairn: listening");
    let stream = listening.accepted().await?;
    if let Some(accepted) = stream.accepted() {
        let route = accepted.route.map_or("", |r| r.as_str());
        eprintln!(
            "cairn: stream from {} at {} {route}",
            accepted.peer, accepted.addr
        );
    }
    stream.pipe(tokio::io::stdin(), tokio::io::stdout()).await?;
    Ok(())
}

pub async fn id(args: ApiArgs) -> anyhow::Result<()> {
    let s = args.client().await?.status().await?;
    println!("node_id    {}", s.node_id);
    println!(
        "public_key {}",
        cairn_node::cairn_core::to_hex(&s.public_key)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("2h"), Ok(7_200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("h").is_err());
        assert_eq!(parse_duration("3650d"), Ok(MAX_TTL_SECS));
        assert!(parse_duration("3651d").is_err());
        assert!(parse_duration("99999999999d").is_err());
        assert!(parse_duration("-5").is_err());
    }

    #[test]
    fn status_names_a_storage_that_is_not_ok_and_its_last_error() {
        let ok: cairn_node::store::StorageStatus =
            serde_json::from_str(r#"{"state": "ok"}"#).expect("parses");
        assert_eq!(storage_line(&ok), None);
        let full: cairn_node::store::StorageStatus = serde_json::from_str(
            r#"{"state": "full", "since": 1800000000, "last_error": "commit: the disk is full"}"#,
        )
        .expect("parses");
        let line = storage_line(&full).expect("shown");
        assert!(line.contains("FULL"), "{line}");
        assert!(line.contains("since unix time 1800000000"), "{line}");
        assert!(line.contains("commit: the disk is full"), "{line}");
    }
}
