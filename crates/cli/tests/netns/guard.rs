//! The guard that owns everything a run of the harness makes on the host: its network
//! namespaces (each named with the run's prefix, `cn<pid>-<n>-`), the processes it started
//! in them, and a scratch directory. Dropping it, panic or not, kills those processes, deletes
//! those namespaces (their veths and bridges go with them) and removes the directory.
//!
//! Creating one first removes what earlier runs left behind: namespaces named `cn<pid>-…`
//! whose pid no longer runs (a run killed before its guard could drop), with the processes
//! still in them, and those runs' scratch directories.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Guards made by this process so far: the `<n>` of the prefix, so that tests running at
/// once in one process build networks apart.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Lines of each process's output shown when a test fails.
const TAIL_LINES: usize = 15;

/// A process started by [`Netns::spawn`], by its index in the guard.
#[derive(Clone, Copy, Debug)]
pub struct Spawned(usize);

/// The host resources of one run; see the module doc.
pub struct Netns {
    prefix: String,
    dir: PathBuf,
    /// Full names of the namespaces made, in order; deleted in reverse.
    namespaces: Vec<String>,
    /// What each process is (its short namespace and a label) and its handle; killed and
    /// reaped when the guard drops, or earlier by [`Netns::stop`].
    processes: Mutex<Vec<(String, Child)>>,
    /// Files named by [`Netns::run`] for the output of short commands.
    runs: AtomicUsize,
}

impl Netns {
    /// A guard with a fresh prefix and scratch directory, after removing earlier runs'
    /// leftovers. Makes no namespace yet.
    pub fn new() -> Self {
        remove_leftovers();
        let pid = std::process::id();
        let prefix = format!("cn{pid}-{}-", RUNS.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(format!("cairn-{prefix}netns"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creates the scratch directory");
        Netns {
            prefix,
            dir,
            namespaces: Vec::new(),
            processes: Mutex::new(Vec::new()),
            runs: AtomicUsize::new(0),
        }
    }

    /// The prefix of every namespace this guard makes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The scratch directory, removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The full name of the namespace `short` (`pub1` → `cn123-0-pub1`).
    pub fn name(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }

    /// Makes the namespace `short` with its loopback up and IPv6 off (the harness is IPv4
    /// only; IPv6 would add router solicitations and the like to the NATs' counters).
    pub fn add(&mut self, short: &str) -> Result<(), String> {
        let name = self.name(short);
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        self.namespaces.push(name);
        self.ip(&["-n", &self.name(short), "link", "set", "lo", "up"])?;
        let sysctl = [
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ];
        run_ok(&mut self.command(short, &sysctl))
    }

    /// Runs `ip ARGS` (from the host, naming this run's namespaces with `-n` or `netns`).
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        run_ok(Command::new("ip").args(args))
    }

    /// `ARGS` to be run in the namespace `short` (`ip netns exec`, which execs the program
    /// itself: a spawned child's pid is the program's).
    pub fn command(&self, short: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name(short)])
            .args(args);
        command
    }

    /// Runs `args` in `short` to the end, at most `limit`, with `stdin` as its input, and
    /// returns its output; a command still running at `limit` fails the test.
    pub fn run(&self, short: &str, args: &[&str], stdin: &str, limit: Duration) -> Output {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let out = self.dir.join(format!("run-{n}.out"));
        let err = self.dir.join(format!("run-{n}.err"));
        let input = self.dir.join(format!("run-{n}.in"));
        std::fs::write(&input, stdin).expect("writes the input");
        let file = |path: &Path| std::fs::File::create(path).expect("creates an output file");
        let mut child = self
            .command(short, args)
            .stdin(std::fs::File::open(&input).expect("opens the input"))
            .stdout(file(&out))
            .stderr(file(&err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {short}: {e}"));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waits") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{args:?} in {short} still ran after {limit:?}; stderr:\n{}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Output {
            status,
            stdout: std::fs::read(&out).expect("reads the output"),
            stderr: std::fs::read(&err).expect("reads the errors"),
        }
    }

    /// Starts `args` in `short` in the background, its standard output and error going to
    /// the file [`Netns::log`] names by `label`; the guard kills it at the latest when it drops.
    pub fn spawn(&self, short: &str, label: &str, args: &[&str]) -> Spawned {
        let log = std::fs::File::create(self.log(label)).expect("creates the log");
        let child = self
            .command(short, args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clones the log's handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {short}: {e}"));
        let mut processes = self.processes.lock().expect("not poisoned");
        processes.push((format!("{short} {label}"), child));
        Spawned(processes.len() - 1)
    }

    /// The file a process spawned as `label` writes to.
    pub fn log(&self, label: &str) -> PathBuf {
        self.dir.join(format!("{label}.log"))
    }

    /// The pid of a spawned process.
    pub fn pid(&self, process: Spawned) -> u32 {
        self.processes.lock().expect("not poisoned")[process.0]
            .1
            .id()
    }

    /// Whether a spawned process has exited, and how.
    pub fn exited(&self, process: Spawned) -> Option<ExitStatus> {
        let mut processes = self.processes.lock().expect("not poisoned");
        processes[process.0].1.try_wait().expect("waits")
    }

    /// What each process wrote last, for a failing test's output.
    fn print_tails(&self, processes: &[(String, Child)]) {
        for (what, _) in processes {
            let label = what.split_once(' ').map_or(what.as_str(), |(_, l)| l);
            let text = std::fs::read_to_string(self.log(label)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
            eprintln!("--- {what}: last lines ---\n{}", tail.join("\n"));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // A panic while the lock was held poisons it; the processes must go all the same.
        let held = self.processes.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut processes = std::mem::take(held);
        if std::thread::panicking() {
            self.print_tails(&processes);
        }
        for (_, child) in &mut processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in self.namespaces.iter().rev() {
            if let Err(why) = delete_namespace(name) {
                eprintln!("the harness could not delete namespace {name}: {why}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `command`; its stderr is the error when it fails or cannot start.
pub fn run_ok(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Names of the host's network namespaces (`ip netns list`).
pub fn namespaces() -> Vec<String> {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Kills what still runs in namespace `name` (a process of the harness's own that it did
/// not start directly, or one left by a dead run) and deletes the namespace.
fn delete_namespace(name: &str) -> Result<(), String> {
    let pids = Command::new("ip")
        .args(["netns", "pids", name])
        .output()
        .map_err(|e| e.to_string())?;
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    run_ok(Command::new("ip").args(["netns", "del", name]))
}

/// The pid in a harness namespace's name (`cn<pid>-…`), if it is one.
fn run_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("cn")?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Whether the run of pid `pid` is over.
fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes every harness namespace, and scratch directory, whose run's pid no longer exists.
fn remove_leftovers() {
    for name in namespaces() {
        let Some(pid) = run_pid(&name).filter(|pid| gone(*pid)) else {
            continue;
        };
        match delete_namespace(&name) {
            Ok(()) => eprintln!("removed {name}, left by an earlier run (pid {pid} is gone)"),
            Err(why) => eprintln!("cannot remove {name}, left by an earlier run: {why}"),
        }
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dead = name
            .strip_prefix("cairn-")
            .and_then(run_pid)
            .is_some_and(gone);
        if dead && name.ends_with("-netns") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
