//! The Python client (`clients/python`) as a user gets it, tested against the `cairn` binary
//! just built: `python -m build` makes its sdist and wheel (into the target directory),
//! `twine check --strict` passes both, and the wheel with its test extras goes into a fresh
//! virtual environment, where pytest runs the tests the sdist carries. Nothing imports the
//! source tree, so a module left out of the wheel or a test file left out of the sdist fails.
//!
//! The build runs on a copy of the sources, so the source tree stays as it was.
//! `build`, `twine` and the wheel's dependencies come from PyPI (cached by pip after the first
//! run). Without Python 3 the test says so and does nothing; set `CAIRN_REQUIRE_PYTHON=1` (as
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

/// Runs `program args` in `dir` and returns its standard output; fails the test unless it
/// exits 0.
fn run(program: &Path, args: &[&str], dir: &Path) -> String {
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
    stdout.into_owned()
}

fn pip_install(venv_python: &Path, what: &[&str], dir: &Path) {
    let mut args = vec![
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ];
    args.extend(what);
    run(venv_python, &args, dir);
}

/// The one file in `dir` whose name ends with `suffix`.
fn built(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the dist directory exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {suffix} in {}: {found:?}",
        dir.display()
    );
    found.into_iter().next().expect("one")
}

/// Copies the client's sources from `from` to `to`, leaving out what a build or a test run
/// left there: setuptools takes the file list of a stale `*.egg-info` as its own, which once
/// hid an sdist without `tests/conftest.py`.
fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates the copy's directory");
    for entry in std::fs::read_dir(from).expect("reads the client's directory") {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let left_by_a_run = ["build", "dist", "__pycache__", ".pytest_cache"]
            .contains(&name.as_str())
            || name.ends_with(".egg-info");
        if left_by_a_run {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        if entry.file_type().expect("a file type").is_dir() {
            copy_sources(&source, &target);
        } else {
            std::fs::copy(&source, &target).expect("copies a source file");
        }
    }
}

/// Builds the sdist and the wheel of a clean copy of `client` into `work/dist` and checks
/// them with twine; returns (sdist, wheel).
fn build_and_check(python: &Path, client: &Path, work: &Path) -> (PathBuf, PathBuf) {
    let tools = work.join("tools-venv");
    let tools_python = tools.join("bin/python");
    if !tools_python.is_file() {
        run(python, &["-m", "venv", &tools.to_string_lossy()], work);
    }
    pip_install(&tools_python, &["build", "twine"], work);
    let (sources, dist) = (work.join("sources"), work.join("dist"));
    for dir in [&sources, &dist] {
        let _ = std::fs::remove_dir_all(dir);
    }
    copy_sources(client, &sources);
    let dist_arg = dist.to_string_lossy();
    // The default build: the sdist, then the wheel from the unpacked sdist, so a file the
    // sdist lacks is missing from the wheel too.
    run(
        &tools_python,
        &["-m", "build", "--outdir", &dist_arg, "."],
        &sources,
    );
    let (sdist, wheel) = (built(&dist, ".tar.gz"), built(&dist, ".whl"));
    let files = [sdist.to_string_lossy(), wheel.to_string_lossy()];
    run(
        &tools_python,
        &["-m", "twine", "check", "--strict", &files[0], &files[1]],
        work,
    );
    (sdist, wheel)
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
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python");
    std::fs::create_dir_all(&work).expect("creates the work directory");
    let (sdist, wheel) = build_and_check(&python, &client, &work);

    // The tests as the sdist ships them, unpacked beside the venv: pytest's configuration
    // comes with them (pyproject.toml), the package itself only from the wheel.
    let unpacked = work.join("sdist");
    let _ = std::fs::remove_dir_all(&unpacked);
    // The "data" filter (refuse links out and absolute paths) where Python has it (3.12+).
    let unpack = "import sys, tarfile; \
                  safe = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}; \
                  tarfile.open(sys.argv[1]).extractall(sys.argv[2], **safe)";
    let sdist_arg = sdist.to_string_lossy();
    run(
        &python,
        &["-c", unpack, &sdist_arg, &unpacked.to_string_lossy()],
        &work,
    );
    let stem = sdist_arg
        .rsplit('/')
        .next()
        .and_then(|name| name.strip_suffix(".tar.gz"))
        .expect("the sdist is NAME-VERSION.tar.gz");
    let tests = unpacked.join(stem);

    let venv = work.join("test-venv");
    run(
        &python,
        &["-m", "venv", "--clear", &venv.to_string_lossy()],
        &work,
    );
    let venv_python = venv.join("bin/python");
    let wheel_with_extras = format!("{}[test]", wheel.to_string_lossy());
    pip_install(&venv_python, &[&wheel_with_extras], &work);

    // `import cairn` resolves to the venv's copy, from the wheel, even in the test directory.
    let imported = run(
        &venv_python,
        &["-c", "import cairn; print(cairn.__file__)"],
        &tests,
    );
    assert!(
        Path::new(imported.trim()).starts_with(&venv),
        "cairn was imported from {imported}, not from the wheel installed in the venv"
    );
    run(
        &venv_python,
        &["-m", "pytest", "-q", "-p", "no:cacheprovider"],
        &tests,
    );
}
