//! A test harness that runs real `cairn` processes behind real NATs: Linux network
//! namespaces joined by veth pairs and bridges, with `nft` masquerading in between
//! ([`topology`]). [`guard`] owns what a run makes and removes it however the test ends;
//! [`probe`] sends and watches plain UDP and TCP through the NATs with `python3`; [`nodes`]
//! starts a cairn network in the namespaces and drives it through the CLI.
//!
//! It needs root, `ip` (iproute2), `nft` (nftables) and `python3`. Where one is missing, or
//! the kernel refuses namespaces or NAT (a container without CAP_SYS_ADMIN, no nf_nat),
//! [`start`] prints `skipped: <reason>` and the test returns; with `CAIRN_REQUIRE_NETNS=1`
//! (as `.ci/run` sets) that is a failure instead.

pub mod guard;
pub mod nodes;
pub mod probe;
pub mod topology;

use std::time::{Duration, Instant};

use guard::{Netns, run_ok};
use topology::Topology;

/// The variable that turns a skip into a failure.
const REQUIRE: &str = "CAIRN_REQUIRE_NETNS";

/// The topology, built; or `None` after printing why it cannot be here (a failure instead
/// when [`REQUIRE`] is set).
pub fn start() -> Option<Topology> {
    match checked() {
        Ok(netns) => Some(Topology::build(netns)),
        Err(why) => {
            assert!(
                std::env::var(REQUIRE).as_deref() != Ok("1"),
                "{REQUIRE}=1 but the NAT harness cannot run: {why}"
            );
            println!("skipped: {why}");
            None
        }
    }
}

/// A guard holding the switch namespace `sw`, once every check passed, in this order: root;
/// `ip`, `nft` and `python3` on the PATH; `ip netns add`; an `nft` NAT table in a namespace.
fn checked() -> Result<Netns, String> {
    if !root() {
        return Err("not root: network namespaces and nft need root".into());
    }
    for tool in ["ip", "nft", "python3"] {
        if !on_path(tool) {
            return Err(format!("no {tool} on the PATH"));
        }
    }
    let mut netns = Netns::new();
    netns
        .add("sw")
        .map_err(|why| format!("ip netns add fails: {why}"))?;
    let nat = [
        "add table ip probe",
        "add chain ip probe post { type nat hook postrouting priority srcnat; }",
        "add rule ip probe post masquerade random",
        "delete table ip probe",
    ];
    for command in nat {
        let args: Vec<&str> = std::iter::once("nft").chain([command]).collect();
        run_ok(&mut netns.command("sw", &args))
            .map_err(|why| format!("nft NAT is unavailable: {why}"))?;
    }
    Ok(netns)
}

/// Whether this process runs as root (its effective uid is 0).
fn root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

/// Calls `check` until it gives a value, every `every`, for at most `limit`; past it the
/// test fails naming `what` and the last thing `check` said.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if started.elapsed() > limit => {
                panic!("{what}: not within {limit:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(every),
        }
    }
}
