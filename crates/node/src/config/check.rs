//! Checking a config file key by key, so an operator sees every problem at once
//! (`cairn node --check-config FILE`) instead of the first one at each start.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::{Config, FileConfig};

/// One problem in a config file: a line that is not TOML, an unknown key, a value of the
/// wrong type or out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|n| format!("line {n}: ")).unwrap_or_default())]
#[non_exhaustive]
pub struct Problem {
    /// The line it is on, from 1, when known.
    pub line: Option<usize>,
    /// The key it is about, when it is about one.
    pub key: Option<String>,
    /// What is wrong, naming the key.
    pub message: String,
}

/// Every problem of the config file `path`, which may also hold the caller's own keys `own`
/// (checked as `T`, like [`FileConfig::load_with`]); none means `load_with` and
/// [`FileConfig::apply`] take it. A file that cannot be read or is not TOML is one problem.
pub fn check_with<T: DeserializeOwned>(path: &Path, own: &[&str]) -> Vec<Problem> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            return vec![problem(
                None,
                None,
                format!("cannot read the file: {error}"),
            )];
        }
    };
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(error) => {
            let line = error.span().map(|span| line_of_offset(&text, span.start));
            return vec![problem(line, None, error.message().trim().to_owned())];
        }
    };
    let mut problems = Vec::new();
    for (key, value) in table {
        let line = line_of_key(&text, &key);
        let mut single = toml::Table::new();
        single.insert(key.clone(), value);
        if own.contains(&key.as_str()) {
            if let Err(error) = single.try_into::<T>() {
                problems.push(problem(
                    line,
                    Some(&key),
                    format!("{key}: {}", error.message().trim()),
                ));
            }
            continue;
        }
        match single.try_into::<FileConfig>() {
            Err(error) if error.message().contains("unknown field") => {
                problems.push(problem(line, Some(&key), format!("unknown key {key}")));
            }
            Err(error) => {
                problems.push(problem(
                    line,
                    Some(&key),
                    format!("{key}: {}", error.message().trim()),
                ));
            }
            Ok(file) => {
                if let Err(error) = file.apply(&mut Config::default()) {
                    let message = match error {
                        super::ConfigError::Invalid(message) => message,
                        other => other.to_string(),
                    };
                    problems.push(problem(line, Some(&key), message));
                }
            }
        }
    }
    problems.sort_by_key(|p| p.line);
    problems
}

fn problem(line: Option<usize>, key: Option<&str>, message: String) -> Problem {
    Problem {
        line,
        key: key.map(str::to_owned),
        message,
    }
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).lines().count().max(1)
        + usize::from(text.get(..offset).is_some_and(|t| t.ends_with('\n')))
}

/// The line a top-level key is set on: `key = …`, `"key" = …` or `[key]`.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix(key)
                .or_else(|| line.strip_prefix(&format!("\"{key}\"")))
                .or_else(|| line.strip_prefix(&format!("[{key}]")).map(|_| "="));
            rest.is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Own {
        api: Option<std::net::SocketAddr>,
    }

    fn check(text: &str) -> Vec<String> {
        let path = std::env::temp_dir().join(format!(
            "cairn-check-{}-{}.toml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).expect("written");
        let found = check_with::<Own>(&path, &["api"]);
        let _ = std::fs::remove_file(&path);
        found.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_problem_is_one_line_with_its_line_and_key() {
        assert_eq!(
            check("k = 8\napi = \"127.0.0.1:1\"\n"),
            Vec::<String>::new()
        );
        assert_eq!(
            check("k = 0\ncolour = 3\nalpha = \"x\"\napi = 5\nlisten_ttl_secs = 900\n"),
            vec![
                "line 1: k must be at least 1".to_owned(),
                "line 2: unknown key colour".to_owned(),
                "line 3: alpha: invalid type: string \"x\", expected usize".to_owned(),
                "line 4: api: invalid type: integer `5`, expected socket address".to_owned(),
                "line 5: listen_ttl_secs must be 1 to 600 (the protocol's limit)".to_owned(),
            ]
        );
        let broken = check("k = 8\nalpha = = 3\n");
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(broken[0].starts_with("line 2: "), "{broken:?}");
        // Old spellings still count as the key they became.
        assert!(check("max_items_per_network = 5\n").is_empty());
    }
}
