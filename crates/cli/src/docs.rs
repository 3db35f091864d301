//! `cairn completions SHELL` and `cairn man`: shell completion scripts and man pages generated
//! from the command line's own clap definition, so they list exactly the subcommands and
//! options this binary accepts.
//!
//! Both render into memory first and then write standard output once: clap_complete panics
//! when its writer fails, and `cairn man | head` must end quietly rather than with a panic.

use std::io::Write;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::Cli;

/// Arguments of `cairn completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Arguments of `cairn man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// A subcommand, for its own page (cairn-SUBCOMMAND(1)) with all its options; without it,
    /// the page of `cairn` itself, which lists the subcommands.
    #[arg(value_name = "SUBCOMMAND")]
    subcommand: Option<String>,
}

/// `cairn completions SHELL`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "cairn", &mut script);
    write_stdout(&script)
}

/// `cairn man [SUBCOMMAND]`.
pub fn man(args: ManArgs) -> anyhow::Result<()> {
    let mut root = Cli::command().disable_help_subcommand(true);
    // Building sets each subcommand's display name (`cairn-node`), which names its page.
    root.build();
    let page = match &args.subcommand {
        None => root,
        Some(name) => visible_subcommand(&root, name)?,
    };
    // Titles in capitals and the whole program as the source, as man-pages(7) has them.
    let title = page.get_display_name().unwrap_or("cairn").to_uppercase();
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .title(title)
        .source(format!("cairn {}", env!("CARGO_PKG_VERSION")))
        .render(&mut roff)
        .context("cannot render the man page")?;
    write_stdout(&roff)
}

/// The subcommand called `name`, unless it is hidden (not for use by hand, so no page).
fn visible_subcommand(root: &clap::Command, name: &str) -> anyhow::Result<clap::Command> {
    let visible: Vec<&clap::Command> = root
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .collect();
    if let Some(found) = visible.iter().find(|c| c.get_name() == name) {
        return Ok((*found).clone());
    }
    let names: Vec<&str> = visible.iter().map(|c| c.get_name()).collect();
    anyhow::bail!(
        "no subcommand {name:?}; the man pages are for {}",
        names.join(", ")
    )
}

/// Writes `bytes` to standard output; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}
