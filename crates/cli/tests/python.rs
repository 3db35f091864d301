//! The Python client's tests (`clients/python`), run by `cargo test` against the `cairn`
//! binary just built: a virtual environment in the target directory gets the package with
//! its test extras (from PyPI, once), then pytest runs.
//!
//! Without Python 3 the test says so and does nothing; set `CAIRN_REQUIRE_PYTHON=1` (as
//! `.ci/run` does) to make that a failure instead.

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["python3", "python"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| {
            Command::new(candidate)
                .args(["-c", "import sys, venv; assert sys.version_info >= (3, 9)"])
                .status()
                .is_ok_and(|s| s.success())
        })
}

fn run(program: &Path, args: &[&str], dir: &Path) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("CAIRN_BIN", env!("CARGO_BIN_EXE_cairn"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{} {args:?} failed:\n{stdout}\n{stderr}",
        program.display()
    );
}

#[cfg_attr(
    cairn_no_python,
    ignore = "needs Python 3.9+ with venv; CAIRN_REQUIRE_PYTHON=1 fails instead"
)]
#[test]
fn the_python_client_passes_its_tests_against_real_nodes() {
    let Some(python) = python() else {
        let required = std::env::var_os("CAIRN_REQUIRE_PYTHON").is_some();
        assert!(
            !required,
            "CAIRN_REQUIRE_PYTHON is set but no Python 3.9+ with venv was found"
        );
        eprintln!(
            "SKIPPED the_python_client_passes_its_tests_against_real_nodes: no Python 3.9 or \
             newer with the venv module on the PATH"
        );
        return;
    };
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/python");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venv");
    let venv_python = venv.join("bin/python");
    if !venv_python.is_file() {
        let venv_arg = venv.to_string_lossy();
        run(&python, &["-m", "venv", &venv_arg], &client);
    }
    // Installed again each run: cheap once the wheels are cached, and the package's code is
    // what is under test.
    run(
        &venv_python,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            ".[test]",
        ],
        &client,
    );
    run(
        &venv_python,
        &["-m", "pytest", "-q", "-p", "no:cacheprovider"],
        &client,
    );
}
