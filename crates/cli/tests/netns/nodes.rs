//! A cairn network in the topology: the real `cairn node` in every host's namespace, all on
//! port 7400 with the API on the namespace's own 127.0.0.1:7401, joining through the first
//! public host. Every CLI command runs in the namespace of the node it talks to
//! (`ip netns exec NS cairn put …`), as a user on that host would run it; the API's JSON
//! (`/v1/status`, `/v1/peers`) is read there too, with `python3`'s urllib.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use super::guard::Spawned;
use super::topology::{Host, PRIVATE, PUBLIC, Topology};
use super::wait_for;

/// The binary under test.
const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// The port every node listens on (TCP and UDP).
pub const PORT: u16 = 7400;

/// Every node's API, on its own namespace's loopback.
const API: &str = "127.0.0.1:7401";

/// The whole public segment is one /24, so every node there counts in one subnet: the
/// routing table's per-subnet shares (2 places a bucket, 10 a table by default) would keep
/// most of a 9-node network out of every table.
const CONFIG: &str = "\
max_subnet_contacts_per_bucket = 20
max_subnet_contacts = 100
";

/// Prints the API's answer at the path argv[1].
const API_GET: &str = r#"
import sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:7401" + sys.argv[1], timeout=30) as answer:
    sys.stdout.write(answer.read().decode())
"#;

/// How long a CLI command may run: a lookup gives up after 30 s.
const COMMAND_LIMIT: Duration = Duration::from_secs(90);

/// How long the network may take to come up and fill its tables.
const START_LIMIT: Duration = Duration::from_secs(60);

/// One running node.
pub struct Node {
    pub host: &'static Host,
    /// Its id, hex, as `/v1/status` and `/v1/peers` show it.
    pub node_id: String,
    pub process: Spawned,
}

/// A running network; dropping it stops every node and removes the topology.
pub struct Network {
    topology: Topology,
    pub nodes: Vec<Node>,
    /// Watches started so far: names their logs apart.
    watches: std::sync::atomic::AtomicUsize,
}

impl Network {
    /// Starts a node on every host (the first public one first, as the seed), waits until
    /// each API answers, every public node's table holds the other public nodes and every
    /// private node's holds at least three public ones.
    pub fn start(topology: Topology) -> Self {
        let config = topology.netns().dir().join("node.toml");
        std::fs::write(&config, CONFIG).expect("writes the config");
        let mut network = Network {
            topology,
            nodes: Vec::new(),
            watches: std::sync::atomic::AtomicUsize::new(0),
        };
        let seed = format!("{}:{PORT}", PUBLIC[0].addr);
        network.launch(&PUBLIC[0], &config, None);
        for host in PUBLIC[1..].iter().chain(&PRIVATE) {
            network.launch(host, &config, Some(&seed));
        }
        let public: Vec<String> = network.nodes[..PUBLIC.len()]
            .iter()
            .map(|node| node.node_id.clone())
            .collect();
        for node in &network.nodes {
            let needed = if node.host.nat.is_none() {
                public.len() - 1
            } else {
                3
            };
            wait_for(
                &format!("{}'s table to hold {needed} public nodes", node.host.name),
                START_LIMIT,
                Duration::from_millis(200),
                || {
                    if let Some(exit) = network.topology.netns().exited(node.process) {
                        panic!("the node on {} exited: {exit}", node.host.name);
                    }
                    let table = network.table(node.host)?;
                    let known = public.iter().filter(|id| table.contains(id)).count();
                    if known >= needed {
                        Ok(())
                    } else {
                        Err(format!("it holds {table:?}"))
                    }
                },
            );
        }
        network
    }

    /// Starts `cairn node` on `host`, joining through `seed`, and waits for its API.
    fn launch(&mut self, host: &'static Host, config: &std::path::Path, seed: Option<&str>) {
        let netns = self.topology.netns();
        let data = netns.dir().join(format!("data-{}", host.name));
        let (config, data) = (config.display().to_string(), data.display().to_string());
        let listen = format!("0.0.0.0:{PORT}");
        let mut args = vec![CAIRN, "node", "--config", &config, "--listen", &listen];
        args.extend(["--api", API, "--data-dir", &data]);
        if let Some(seed) = seed {
            args.extend(["--bootstrap", seed]);
        }
        let process = netns.spawn(host.name, &format!("node-{}", host.name), &args);
        let status = wait_for(
            &format!("the node on {} to answer", host.name),
            START_LIMIT,
            Duration::from_millis(100),
            || {
                if let Some(exit) = netns.exited(process) {
                    panic!("the node on {} exited: {exit}", host.name);
                }
                self.api(host, "/v1/status")
            },
        );
        let node_id = status["node_id"].as_str().expect("a node id").to_owned();
        self.nodes.push(Node {
            host,
            node_id,
            process,
        });
    }

    /// The topology the network runs in.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The JSON the API of `host`'s node answers at `path`.
    pub fn api(&self, host: &Host, path: &str) -> Result<Value, String> {
        let args = ["python3", "-c", API_GET, path];
        let answer = self
            .topology
            .netns()
            .run(host.name, &args, "", COMMAND_LIMIT);
        if !answer.status.success() {
            let stderr = String::from_utf8_lossy(&answer.stderr);
            return Err(stderr.lines().last().unwrap_or_default().to_owned());
        }
        serde_json::from_slice(&answer.stdout).map_err(|e| e.to_string())
    }

    /// The ids in the routing table of `host`'s node.
    pub fn table(&self, host: &Host) -> Result<Vec<String>, String> {
        Ok(self.peers(host)?.iter().map(|p| p.0.clone()).collect())
    }

    /// `(id, address)` of every contact in the routing table of `host`'s node.
    pub fn peers(&self, host: &Host) -> Result<Vec<(String, String)>, String> {
        let peers = self.api(host, "/v1/peers")?;
        let peers = peers.as_array().ok_or("/v1/peers is not a list")?;
        Ok(peers
            .iter()
            .map(|p| {
                let field = |name: &str| p[name].as_str().unwrap_or_default().to_owned();
                (field("node_id"), field("addr"))
            })
            .collect())
    }

    /// Runs `cairn ARGS` against `host`'s node, in its namespace.
    pub fn cairn(&self, host: &Host, args: &[&str]) -> Output {
        let data = self.data_dir(host);
        let all = cairn_args(args, &data);
        self.topology
            .netns()
            .run(host.name, &all, "", COMMAND_LIMIT)
    }

    /// `cairn ARGS` against `host`'s node, in its namespace, not yet run (for a caller that
    /// sets its input and output).
    #[allow(dead_code)]
    pub fn cairn_command(&self, host: &Host, args: &[&str]) -> std::process::Command {
        let data = self.data_dir(host);
        let all = cairn_args(args, &data);
        self.topology.netns().command(host.name, &all)
    }

    fn data_dir(&self, host: &Host) -> String {
        let dir = self.topology.netns().dir();
        dir.join(format!("data-{}", host.name))
            .display()
            .to_string()
    }

    /// `cairn put NAME VALUE` on `host`; returns the item's `PUBLIC_KEY/NAME`.
    pub fn put(&self, host: &Host, name: &str, value: &str) -> String {
        let put = self.cairn(host, &["put", name, value]);
        assert!(put.status.success(), "put on {}: {}", host.name, text(&put));
        String::from_utf8_lossy(&put.stdout).trim().to_owned()
    }

    /// `cairn get TARGET` on `host`: the value, or what it said on failure.
    pub fn get(&self, host: &Host, target: &str) -> Result<String, String> {
        let got = self.cairn(host, &["get", target]);
        if got.status.success() {
            Ok(String::from_utf8_lossy(&got.stdout).into_owned())
        } else {
            Err(text(&got))
        }
    }

    /// `cairn delete NAME` on `host`.
    pub fn delete(&self, host: &Host, name: &str) {
        let deleted = self.cairn(host, &["delete", name]);
        assert!(
            deleted.status.success(),
            "delete on {}: {}",
            host.name,
            text(&deleted)
        );
    }

    /// Starts `cairn watch --json TARGET` on `host`; it runs until the network drops.
    pub fn watch(&self, host: &Host, target: &str) -> Watch {
        let n = self
            .watches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let label = format!("watch-{n}-{}", host.name);
        let data = self.data_dir(host);
        let args = [
            CAIRN,
            "watch",
            "--json",
            target,
            "--api",
            API,
            "--data-dir",
            &data,
        ];
        self.topology.netns().spawn(host.name, &label, &args);
        Watch { label }
    }
}

/// A command's standard output and error, for a failure's message.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A version a watch printed.
#[derive(Clone, Debug)]
pub struct Version {
    pub tombstone: bool,
    pub seq: u64,
    pub text: String,
}

/// A running `cairn watch --json`.
pub struct Watch {
    label: String,
}

impl Watch {
    /// The versions printed so far, in order.
    pub fn versions(&self, network: &Network) -> Vec<Version> {
        let log = network.topology.netns().log(&self.label);
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|v| Version {
                tombstone: v["kind"] == "tombstone",
                seq: v["seq"].as_u64().unwrap_or_default(),
                text: v["text"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// Waits (at most a minute) until the versions printed satisfy `done`; returns them.
    pub fn until(
        &self,
        network: &Network,
        what: &str,
        done: impl Fn(&[Version]) -> bool,
    ) -> Vec<Version> {
        wait_for(
            what,
            Duration::from_secs(60),
            Duration::from_millis(50),
            || {
                let versions = self.versions(network);
                if done(&versions) {
                    Ok(versions)
                } else {
                    Err(format!("{versions:?}"))
                }
            },
        )
    }
}

/// `cairn ARGS --api API --data-dir DATA`.
fn cairn_args<'a>(args: &[&'a str], data: &'a str) -> Vec<&'a str> {
    let mut all = vec![CAIRN];
    all.extend(args);
    all.extend(["--api", API, "--data-dir", data]);
    all
}
