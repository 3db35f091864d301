//! Finds the external tools some of the `cairn` package's tests drive (Chromium, Python,
//! Prometheus, systemd-analyze and strace, ip and nft) and, for each one missing, sets a `cfg`
//! that marks its tests `#[ignore]` with the reason. `cargo test` then shows the skip in its
//! normal output (`test … ignored, needs Chromium: …`) and counts it in the summary line,
//! instead of a pass whose reason only `--nocapture` shows.
//!
//! A tool's `CAIRN_REQUIRE_*` variable (set by `.ci/run`) keeps its tests from being ignored:
//! they run, and fail saying what is missing. The tests keep their own check at run time too,
//! for a tool removed after the build. The script runs again when `PATH`, a directory on it or
//! one of these variables changes, so installing a tool un-ignores its tests.
//!
//! The binary does not use these `cfg`s: building or installing `cairn` is unaffected.

use std::path::PathBuf;
use std::process::Command;

/// A tool the tests need: the `cfg` set when it is missing, the variable that requires it,
/// and how to tell whether it is there.
struct Tool {
    missing_cfg: &'static str,
    require: &'static str,
    found: fn(&[PathBuf]) -> bool,
}

const TOOLS: [Tool; 5] = [
    Tool {
        missing_cfg: "cairn_no_chromium",
        require: "CAIRN_REQUIRE_BROWSER",
        found: |path| {
            std::env::var_os("CAIRN_CHROMIUM").is_some()
                || on_path(
                    path,
                    &[
                        "chromium",
                        "chromium-browser",
                        "google-chrome",
                        "google-chrome-stable",
                    ],
                )
        },
    },
    Tool {
        missing_cfg: "cairn_no_python",
        require: "CAIRN_REQUIRE_PYTHON",
        found: |path| {
            ["python3", "python"]
                .iter()
                .flat_map(|name| path.iter().map(move |dir| dir.join(name)))
                .any(|python| {
                    Command::new(python)
                        .args(["-c", "import sys, venv; assert sys.version_info >= (3, 9)"])
                        .status()
                        .is_ok_and(|s| s.success())
                })
        },
    },
    Tool {
        missing_cfg: "cairn_no_prometheus",
        require: "CAIRN_REQUIRE_PROMETHEUS",
        found: |path| on_path(path, &["prometheus"]) && on_path(path, &["promtool"]),
    },
    Tool {
        missing_cfg: "cairn_no_systemd",
        require: "CAIRN_REQUIRE_SYSTEMD",
        found: |path| on_path(path, &["systemd-analyze"]) && on_path(path, &["strace"]),
    },
    Tool {
        missing_cfg: "cairn_no_netns",
        require: "CAIRN_REQUIRE_NETNS",
        found: |path| on_path(path, &["ip"]) && on_path(path, &["nft"]),
    },
];

/// Whether one of `names` is a file in a directory of `path`.
fn on_path(path: &[PathBuf], names: &[&str]) -> bool {
    names
        .iter()
        .any(|name| path.iter().any(|dir| dir.join(name).is_file()))
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=CAIRN_CHROMIUM");
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // A tool installed or removed changes its directory. Relative entries ("." and the like)
    // are left out: cargo would scan the whole tree under them.
    for dir in path.iter().filter(|d| d.is_absolute() && d.is_dir()) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    for tool in TOOLS {
        println!("cargo::rustc-check-cfg=cfg({})", tool.missing_cfg);
        println!("cargo::rerun-if-env-changed={}", tool.require);
        let required = std::env::var_os(tool.require).is_some();
        if !required && !(tool.found)(&path) {
            println!("cargo::rustc-cfg={}", tool.missing_cfg);
        }
    }
}
