//! `cairn completions SHELL` and `cairn man`, run as a user runs them: the real binary's
//! output is loaded into a real bash and asked to complete, checked by zsh and fish for syntax
//! when they are installed, and the man page is rendered by groff when it is installed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary under test.
const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// The subcommands a user types, which every completion script and the man page must name.
const SUBCOMMANDS: [&str; 9] = [
    "node", "put", "get", "delete", "watch", "status", "id", "testnet", "bench",
];

/// Runs `cairn ARGS` and returns its standard output, failing the test unless it exits 0.
fn cairn(args: &[&str]) -> String {
    let output = Command::new(CAIRN).args(args).output().expect("cairn runs");
    assert!(
        output.status.success(),
        "cairn {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the output is UTF-8")
}

/// The program called `name` on the PATH, if there is one.
fn installed(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs `program args` with `input` on its standard input.
fn run_with_input(program: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("writes the input");
    child.wait_with_output().expect("the program ends")
}

/// What bash's completion offers after `words`, with the script `cairn completions bash`
/// printed loaded exactly as a user's shell loads it.
fn bash_completes(bash: &Path, script: &str, words: &[&str]) -> Vec<String> {
    let words_array = words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let program = format!(
        "{script}\nCOMP_WORDS=({words_array}); COMP_CWORD={cword}; \
         _cairn cairn '{current}' '{previous}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        cword = words.len() - 1,
        current = words[words.len() - 1],
        previous = words[words.len() - 2],
    );
    let output = run_with_input(bash, &["--norc", "--noprofile"], &program);
    assert!(
        output.status.success(),
        "bash failed on the completion script: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_completes_the_real_subcommands_and_options() {
    let script = cairn(&["completions", "bash"]);
    for name in SUBCOMMANDS {
        assert!(script.contains(name), "the bash script never names {name}");
    }
    let Some(bash) = installed("bash") else {
        eprintln!("SKIPPED completing in bash: no bash on the PATH (the script was only read)");
        return;
    };
    assert_eq!(bash_completes(&bash, &script, &["cairn", "no"]), ["node"]);
    assert_eq!(bash_completes(&bash, &script, &["cairn", "g"]), ["get"]);
    assert_eq!(
        bash_completes(&bash, &script, &["cairn", "node", "--data"]),
        ["--data-dir"]
    );
    // An empty word is offered the flags too; the values are the shells clap_complete knows.
    let mut offered = bash_completes(&bash, &script, &["cairn", "completions", ""]);
    offered.retain(|word| !word.starts_with('-'));
    assert_eq!(offered, ["bash", "elvish", "fish", "powershell", "zsh"]);
}

#[test]
fn every_shell_gets_a_script_naming_every_subcommand() {
    // What each shell's script registers itself with, so that an empty or wrong script fails.
    let shells = [
        ("bash", "complete -F _cairn"),
        ("zsh", "#compdef cairn"),
        ("fish", "complete -c cairn"),
        ("elvish", "edit:completion:arg-completer[cairn]"),
        (
            "powershell",
            "Register-ArgumentCompleter -Native -CommandName 'cairn'",
        ),
    ];
    for (shell, registration) in shells {
        let script = cairn(&["completions", shell]);
        assert!(
            script.contains(registration),
            "the {shell} script lacks {registration:?}"
        );
        for name in SUBCOMMANDS {
            assert!(
                script.contains(name),
                "the {shell} script never names {name}"
            );
        }
    }
}

#[test]
fn zsh_and_fish_accept_their_scripts_when_installed() {
    // Each shell's own parser, without running the script: `zsh -n` and `fish --no-execute`.
    for (shell, args) in [("zsh", ["-n"]), ("fish", ["--no-execute"])] {
        let Some(program) = installed(shell) else {
            eprintln!("SKIPPED the {shell} syntax check: no {shell} on the PATH");
            continue;
        };
        let output = run_with_input(&program, &args, &cairn(&["completions", shell]));
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "{shell} rejects its completion script: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn completions_refuses_an_unknown_shell() {
    let output = Command::new(CAIRN)
        .args(["completions", "tcsh"])
        .output()
        .expect("cairn runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tcsh") && stderr.contains("bash"),
        "{stderr}"
    );
}

/// The page's `.TH` line and the names its SUBCOMMANDS section lists, read from the roff.
fn roff_title_and_subcommands(page: &str) -> (String, Vec<String>) {
    let title = page
        .lines()
        .find(|line| line.starts_with(".TH "))
        .expect("the page has a .TH line")
        .to_owned();
    let section: Vec<&str> = page
        .lines()
        .skip_while(|line| *line != ".SH SUBCOMMANDS")
        .skip(1)
        .take_while(|line| !line.starts_with(".SH "))
        .collect();
    // Each entry is `.TP`, then the tag line `cairn\-NAME(1)`, then its summary.
    let names = section
        .windows(2)
        .filter(|pair| pair[0] == ".TP")
        .filter_map(|pair| pair[1].strip_prefix("cairn\\-")?.strip_suffix("(1)"))
        .map(str::to_owned)
        .collect();
    (title, names)
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand() {
    let page = cairn(&["man"]);
    let (title, names) = roff_title_and_subcommands(&page);
    assert!(title.starts_with(".TH CAIRN 1 "), "{title}");
    for name in SUBCOMMANDS {
        assert!(names.iter().any(|n| n == name), "no {name} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n == "testnet-worker"),
        "the hidden worker is listed"
    );
    // Every line is a request, or text that does not start like one by accident.
    for line in page.lines() {
        assert!(
            !line.starts_with('\'') || line.starts_with("'\\\""),
            "a text line starts with a control character: {line}"
        );
    }

    let node = cairn(&["man", "node"]);
    assert!(node.contains(".TH CAIRN-NODE 1 "), "{node}");
    assert!(
        node.contains("\\-\\-data\\-dir"),
        "cairn-node(1) lacks --data-dir"
    );
}

#[test]
fn man_refuses_a_subcommand_it_has_no_page_for() {
    let output = Command::new(CAIRN)
        .args(["man", "testnet-worker"])
        .output()
        .expect("cairn runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // It names the pages there are: every visible subcommand.
    let listed = stderr
        .split("the man pages are for ")
        .nth(1)
        .unwrap_or_default();
    for page in ["node", "config", "put", "get", "completions", "man"] {
        assert!(listed.contains(page), "{page} not listed: {stderr}");
    }
    assert!(!listed.contains("testnet-worker"), "{stderr}");
}

#[test]
fn groff_renders_the_man_pages_without_a_warning_when_installed() {
    let Some(groff) = installed("groff") else {
        eprintln!("SKIPPED rendering the man page: no groff on the PATH (Debian's groff-base)");
        return;
    };
    for args in [&["man"][..], &["man", "node"], &["man", "put"]] {
        // -ww: every warning; -P-cbou: plain ASCII, without overstriking for bold.
        let output = run_with_input(&groff, &["-man", "-Tascii", "-ww", "-P-cbou"], &cairn(args));
        let (text, warnings) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(
            output.status.success() && warnings.is_empty(),
            "groff: {warnings}"
        );
        if args.len() == 1 {
            assert!(text.starts_with("CAIRN(1)"), "{text}");
            assert!(text.contains("SUBCOMMANDS") && text.contains("cairn-node(1)"));
        } else {
            assert!(text.contains("OPTIONS"), "{text}");
        }
    }
}
