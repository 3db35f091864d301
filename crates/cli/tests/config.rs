//! `cairn config` prints a complete, commented config file of the defaults that
//! `cairn node --config` takes back unchanged, and `cairn node --check-config` reports every
//! problem of a file, one line each, or "ok".

#[allow(dead_code)]
mod common;

use std::process::{Command, Output};

use common::{CAIRN, temp_dir};

fn cairn(args: &[&str]) -> Output {
    Command::new(CAIRN).args(args).output().expect("cairn runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_printed_defaults_are_complete_commented_and_load_back_unchanged() {
    let dir = temp_dir("config");
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let printed = cairn(&["config"]);
    assert!(printed.status.success());
    let text = stdout(&printed);
    let keys: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(" = ").next())
        .collect();
    // The binary's own keys, then every node key of the one table, each once, each commented
    // (`metrics` is unset by default: it is shown commented out).
    assert!(text.contains("\n# metrics =\n"), "{text}");
    let mut expected = vec![
        "api",
        "bootstrap",
        "api_allowed_origins",
        "api_allowed_hosts",
    ];
    expected.extend(cairn_node::config::KEYS.iter().map(|key| key.name));
    assert_eq!(keys, expected, "{text}");
    for key in &keys {
        let at = text
            .lines()
            .position(|line| line.starts_with(&format!("{key} = ")))
            .expect("set");
        assert!(
            at > 0
                && text
                    .lines()
                    .nth(at - 1)
                    .is_some_and(|l| l.starts_with("# "))
        );
    }

    let file = dir.join("cairn.toml");
    std::fs::write(&file, &text).expect("written");
    let checked = cairn(&["node", "--check-config", file.to_str().expect("utf-8")]);
    assert_eq!(
        (checked.status.code(), stdout(&checked)),
        (Some(0), "ok\n".into())
    );
    // Loaded as `cairn node --config` loads it, it is the defaults again.
    let reloaded = cairn(&["config", "--config", file.to_str().expect("utf-8")]);
    assert!(reloaded.status.success());
    assert_eq!(stdout(&reloaded), text);
    // A changed value shows through.
    std::fs::write(&file, "k = 8\napi = \"127.0.0.1:9\"\n").expect("written");
    let changed = stdout(&cairn(&[
        "config",
        "--config",
        file.to_str().expect("utf-8"),
    ]));
    assert!(changed.contains("\nk = 8\n") && changed.contains("\napi = \"127.0.0.1:9\"\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_prints_one_line_per_problem_and_exits_1() {
    let dir = temp_dir("check-config");
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "k = 0\ncolour = \"blue\"\napi = \"nowhere\"\nlisten_ttl_secs = 900\nnetwork = \"lab\"\n",
    )
    .expect("written");
    let checked = cairn(&["node", "--check-config", file.to_str().expect("utf-8")]);
    assert_eq!(checked.status.code(), Some(1));
    assert_eq!(stdout(&checked), "");
    let errors = String::from_utf8_lossy(&checked.stderr).into_owned();
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 4, "{errors}");
    let prefix = format!("cairn: {}: ", file.display());
    for (line, says) in lines.iter().zip([
        "line 1: k must be at least 1",
        "line 2: unknown key colour",
        "line 3: api: ",
        "line 4: listen_ttl_secs must be 1 to 600",
    ]) {
        assert!(line.starts_with(&format!("{prefix}{says}")), "{line}");
    }
    std::fs::write(&file, "k = [\n").expect("written");
    let broken = cairn(&["node", "--check-config", file.to_str().expect("utf-8")]);
    assert_eq!(broken.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&broken.stderr).lines().count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
