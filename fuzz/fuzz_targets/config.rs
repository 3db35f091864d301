//! The config file parser (`cairn_node::config`) on arbitrary file contents, through a real
//! file as `cairn` reads it: `FileConfig::load`, `load_with` (a program's own keys beside the
//! node's), `apply`, and `check_with` (what `cairn config check` prints).
//!
//! Holds: no panic; `check_with` finds no problem exactly when `load_with` and `apply` take
//! the file; every problem names a line inside the file; a file that applies prints (as
//! `template`) a file that loads back to the same settings.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use cairn_node::config::{self, Config, FileConfig};
use libfuzzer_sys::fuzz_target;

/// A program's own key in the same file, as `cairn testnet` keeps its own.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Own {
    nodes: Option<u32>,
}

static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    base.join(format!("cairn-fuzz-config-{}.toml", std::process::id()))
});

/// The file's settings applied to the defaults.
fn applied(file: &FileConfig) -> Option<Config> {
    let mut config = Config::default();
    file.apply(&mut config).ok()?;
    Some(config)
}

fuzz_target!(|data: &[u8]| {
    let path = PATH.as_path();
    std::fs::write(path, data).expect("written");
    let loaded = FileConfig::load_with::<Own>(path, &["nodes"]);
    let problems = config::check_with::<Own>(path, &["nodes"]);
    let lines = data.split(|b| *b == b'\n').count();
    for problem in &problems {
        assert!(!problem.message.is_empty());
        if let Some(line) = problem.line {
            assert!(
                (1..=lines).contains(&line),
                "problem on line {line} of {lines}"
            );
        }
    }
    let printed = loaded.as_ref().ok().and_then(|(file, _)| applied(file));
    assert_eq!(
        problems.is_empty(),
        printed.is_some(),
        "check_with says {problems:?}, load_with and apply say {:?}",
        loaded.as_ref().err()
    );
    // Without the program's own key, `load` reads what `load_with` read.
    if let Ok((file, Own { nodes: None })) = &loaded {
        assert_eq!(FileConfig::load(path).ok().as_ref(), Some(file));
    }
    if let Some(config) = printed {
        let printed = config::template(&config);
        let again: FileConfig = toml::from_str(&printed).expect("the template parses");
        let again = applied(&again).expect("the template applies");
        assert_eq!(
            format!("{again:?}"),
            format!("{config:?}"),
            "template round trip:\n{printed}"
        );
    }
});
