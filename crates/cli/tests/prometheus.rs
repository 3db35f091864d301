//! What an operator points at cairn, checked with the real tools: a real Prometheus scrapes
//! three `cairn node` processes and agrees with them, `promtool` checks and unit-tests the
//! shipped alert rules (`deploy/prometheus/`), and every panel of the Grafana dashboard
//! (`deploy/grafana/cairn.json`) queries metrics a node really exports.
//!
//! Without `prometheus` and `promtool` on the PATH (Debian's `prometheus` package) the first
//! two tests say so and do nothing; set `CAIRN_REQUIRE_PROMETHEUS=1` (as `.ci/run` does) to
//! make that a failure instead. The dashboard's test needs no tool and always runs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{free_addr, spawn_node, temp_dir};
use serde_json::Value;

/// How long any one wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// The deploy directory at the root of the repository.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// `tool` on the PATH; `None` (after saying why the test skips) if it is missing and
/// `CAIRN_REQUIRE_PROMETHEUS` is not set.
fn tool(tool: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_PROMETHEUS").is_none(),
            "CAIRN_REQUIRE_PROMETHEUS is set but `{tool}` is not on the PATH"
        );
        eprintln!(
            "SKIPPED {test}: `{tool}` is not on the PATH (Debian: apt-get install prometheus)"
        );
    }
    found
}

/// Polls `ready` until it gives a value, for at most [`PATIENCE`].
fn wait_for<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(started.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A GET over HTTP/1.0 (so the body is neither chunked nor kept alive): the status code and
/// the body, or `None` if nobody answered.
fn http_get(addr: SocketAddr, target: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    let request = format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.get(9..12)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// A GET that must answer 200 with JSON.
fn get_json(addr: SocketAddr, target: &str) -> Value {
    let (status, body) = http_get(addr, target).unwrap_or_else(|| panic!("{addr} answers"));
    assert_eq!(status, 200, "GET {target}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

/// `text` as a URL query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Unix time in seconds, as Prometheus writes sample timestamps.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// A child process killed when dropped (a failed assertion must not leave it running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `cairn node` on loopback; `bootstrap`: a node to join.
fn start_node(name: &str, bootstrap: Option<SocketAddr>) -> (Running, SocketAddr, SocketAddr) {
    let (listen, api) = (free_addr(), free_addr());
    let seed = bootstrap.map(|s| s.to_string());
    // On one host no node can show another that it is reachable: servers, as in
    // `cairn testnet`.
    let mut extra: Vec<&str> = vec!["--mode", "server"];
    extra.extend(seed.iter().flat_map(|s| ["--bootstrap", s.as_str()]));
    let child = spawn_node(
        &temp_dir(&format!("prometheus-{name}")),
        listen,
        api,
        &extra,
    );
    (Running(child), listen, api)
}

/// A node's `/v1/status` (once its API answers).
fn status(api: SocketAddr) -> Value {
    wait_for("the node's API", || {
        let (code, body) = http_get(api, "/v1/status")?;
        (code == 200).then(|| serde_json::from_str(&body).expect("JSON"))
    })
}

/// A series: its metric's labels as `name=value` pairs, sorted.
type Series = BTreeSet<String>;

/// The samples of `metric` in a node's own `/metrics` text, by labels.
fn own_samples(api: SocketAddr, metric: &str) -> BTreeMap<Series, f64> {
    let (code, text) = http_get(api, "/metrics").expect("the node answers");
    assert_eq!(code, 200);
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        if name != metric {
            continue;
        }
        let labels = labels.trim_end_matches('}');
        let labels: Series = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| l.replace('"', ""))
            .collect();
        samples.insert(labels, value.parse().expect("a number"));
    }
    samples
}

/// A Prometheus server of this test's own: its own config, its own storage in a temp dir,
/// its own port.
struct Prometheus {
    _process: Running,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(binary: &Path, targets: &[SocketAddr]) -> Self {
        let dir = temp_dir("prometheus-server");
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: cairn\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("writes the config");
        let addr = free_addr();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("a log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let prometheus = Prometheus {
            _process: Running(child),
            addr,
        };
        wait_for("Prometheus to be ready", || {
            http_get(addr, "/-/ready").filter(|(code, _)| *code == 200)
        });
        prometheus
    }

    /// The `data.result` of an instant query.
    fn query(&self, query: &str) -> Vec<Value> {
        let answer = get_json(self.addr, &format!("/api/v1/query?query={}", encode(query)));
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        answer["data"]["result"]
            .as_array()
            .expect("a result")
            .clone()
    }

    /// The health of each scrape target, by address.
    fn targets(&self) -> BTreeMap<String, String> {
        let answer = get_json(self.addr, "/api/v1/targets?state=active");
        answer["data"]["activeTargets"]
            .as_array()
            .expect("targets")
            .iter()
            .map(|t| {
                let instance = t["labels"]["instance"].as_str().unwrap_or_default();
                let health = t["health"].as_str().unwrap_or_default();
                (instance.to_owned(), health.to_owned())
            })
            .collect()
    }

    /// For each instance, the newest sample of each series of `metric` scraped after `after`
    /// (Unix seconds), by labels (Prometheus's own `instance` and `job` left out).
    fn scraped_after(&self, metric: &str, after: f64) -> BTreeMap<String, BTreeMap<Series, f64>> {
        let mut found: BTreeMap<String, BTreeMap<Series, f64>> = BTreeMap::new();
        for series in self.query(&format!("{metric}[1m]")) {
            let labels = series["metric"].as_object().expect("labels");
            let instance = labels["instance"].as_str().expect("an instance").to_owned();
            let own: Series = labels
                .iter()
                .filter(|(k, _)| !["__name__", "instance", "job"].contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            let newest = series["values"]
                .as_array()
                .expect("values")
                .iter()
                .rfind(|v| v[0].as_f64().is_some_and(|at| at > after));
            if let Some(sample) = newest {
                let value = sample[1]
                    .as_str()
                    .expect("a value")
                    .parse()
                    .expect("a number");
                found.entry(instance).or_default().insert(own, value);
            }
        }
        found
    }
}

/// What the test compares, read from the nodes themselves: each node's `cairn_lookups_total`
/// series from its own `/metrics`, and its `/v1/status` `lookups` (every command ended) and
/// `peers`.
#[derive(Debug, PartialEq)]
struct Reading {
    lookups: BTreeMap<String, BTreeMap<Series, f64>>,
    status_lookups: BTreeMap<String, f64>,
    peers: BTreeMap<String, f64>,
}

fn read_nodes(apis: &[SocketAddr]) -> Reading {
    Reading {
        lookups: apis
            .iter()
            .map(|api| (api.to_string(), own_samples(*api, "cairn_lookups_total")))
            .collect(),
        status_lookups: apis
            .iter()
            .map(|api| {
                let lookups = status(*api)["lookups"].as_f64().expect("lookups");
                (api.to_string(), lookups)
            })
            .collect(),
        peers: apis
            .iter()
            .map(|api| {
                let peers = status(*api)["peers"].as_f64().expect("peers");
                (api.to_string(), peers)
            })
            .collect(),
    }
}

#[cfg_attr(
    cairn_no_prometheus,
    ignore = "needs prometheus and promtool (Debian's `prometheus`); CAIRN_REQUIRE_PROMETHEUS=1 fails instead"
)]
#[test]
fn prometheus_scrapes_three_nodes_and_agrees_with_their_status() {
    let test = "prometheus_scrapes_three_nodes_and_agrees_with_their_status";
    let Some(binary) = tool("prometheus", test) else {
        return;
    };
    let (_a, seed, a) = start_node("a", None);
    let (_b, _, b) = start_node("b", Some(seed));
    // c joins once a and b know each other: two nodes joining through one seed at the same
    // moment may each be told of nobody but the seed, and then meet only at the next
    // refresh, ten minutes on (CI once saw this).
    wait_for("b to join a", || {
        [a, b]
            .iter()
            .all(|api| status(*api)["peers"] == 1)
            .then_some(())
    });
    let (_c, _, c) = start_node("c", Some(seed));
    let apis = [a, b, c];
    wait_for("the three nodes to know each other", || {
        apis.iter()
            .all(|api| status(*api)["peers"] == 2)
            .then_some(())
    });
    // The workload: one put through b's API, then nothing more.
    common::put(&b.to_string(), "greeting", "hello");

    let prometheus = Prometheus::start(&binary, &apis);
    wait_for("every target to be up", || {
        let targets = prometheus.targets();
        (targets.len() == 3 && targets.values().all(|h| h == "up")).then_some(())
    });
    wait_for("two scrapes of every node", || {
        let counts = prometheus.query("count_over_time(cairn_uptime_seconds[1m])");
        let twice = counts
            .iter()
            .filter(|r| r["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()) >= Some(2.0))
            .count();
        (twice == 3).then_some(())
    });

    // The nodes are idle but a housekeeping duty could start a command at any moment, so
    // compare a scrape taken between two readings of the nodes that agree: the counters
    // cannot go down, and with no fourth node nothing adds or drops a contact, so a scrape
    // between two equal readings saw those values.
    let (reading, scraped, peers) = wait_for("a scrape between two equal readings", || {
        let before = read_nodes(&apis);
        let after_time = unix_now();
        let (scraped, peers) = wait_for("a scrape after the reading", || {
            let lookups = prometheus.scraped_after("cairn_lookups_total", after_time);
            let peers = prometheus.scraped_after("cairn_routing_table_contacts", after_time);
            (lookups.len() == 3 && peers.len() == 3).then_some((lookups, peers))
        });
        (read_nodes(&apis) == before).then_some((before, scraped, peers))
    });
    assert_eq!(
        scraped, reading.lookups,
        "cairn_lookups_total in Prometheus is what the nodes serve"
    );
    let lookups: BTreeMap<String, f64> = scraped
        .iter()
        .map(|(instance, series)| (instance.clone(), series.values().sum()))
        .collect();
    assert_eq!(
        lookups, reading.status_lookups,
        "cairn_lookups_total in Prometheus, summed, is each node's /v1/status lookups"
    );
    let peers: BTreeMap<String, f64> = peers
        .into_iter()
        .map(|(instance, series)| (instance, series.values().sum()))
        .collect();
    assert_eq!(
        peers, reading.peers,
        "cairn_routing_table_contacts in Prometheus is each node's /v1/status peers"
    );
    let put_ok = Series::from(["operation=put".to_owned(), "outcome=ok".to_owned()]);
    assert_eq!(scraped[&b.to_string()][&put_ok], 1.0, "b ran the one put");
    for idle in [a, c] {
        assert_eq!(scraped[&idle.to_string()][&put_ok], 0.0, "{idle} ran none");
    }
}

/// Runs `promtool ARGS` in `deploy/prometheus` and asserts it succeeds.
fn promtool(binary: &Path, args: &[&str]) {
    let output = Command::new(binary)
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[cfg_attr(
    cairn_no_prometheus,
    ignore = "needs prometheus and promtool (Debian's `prometheus`); CAIRN_REQUIRE_PROMETHEUS=1 fails instead"
)]
#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let test = "the_alert_rules_pass_promtool_and_their_unit_tests";
    let Some(binary) = tool("promtool", test) else {
        return;
    };
    promtool(&binary, &["check", "rules", "alerts.yml"]);
    promtool(&binary, &["test", "rules", "alerts_test.yml"]);
    promtool(&binary, &["check", "config", "prometheus.yml"]);
}

/// Every `cairn_*` name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("cairn_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every PromQL expression of the dashboard: its panels' (rows' included) and its variables'.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target has an expr");
            queries.push((title.to_owned(), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(query) = variable["definition"].as_str() {
            queries.push((format!("variable {}", variable["name"]), query.to_owned()));
        }
    }
    queries
}

#[test]
fn every_grafana_panel_queries_metrics_a_node_exports() {
    let text = std::fs::read_to_string(deploy().join("grafana/cairn.json")).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "the panels were read: {queries:?}");

    let (_node, _, api) = start_node("grafana", None);
    status(api);
    let (code, scrape) = http_get(api, "/metrics").expect("the node answers");
    assert_eq!(code, 200);
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for (title, expr) in &queries {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "{title}: `{expr}` queries no cairn metric"
        );
        for name in names {
            assert!(
                exported.contains(name.as_str()),
                "{title}: `{name}` is not in a node's /metrics"
            );
        }
    }
}
