//! Server, client, or auto (`docs/design.md`, "Client mode"): what the operator chose, and the
//! mode in force now, which every connection task reads when it says what the node is.

use std::sync::atomic::{AtomicBool, Ordering};

use cairn_core::Mode;

/// What the operator chose ([`Config::mode`](crate::Config::mode)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModeSetting {
    /// A server while the node is known to be public, a client otherwise: it checks its
    /// reachability (`docs/design.md`, "Reachability") and switches by itself. A node that
    /// has joined no one yet (the first node of a network) acts as a server until its first
    /// verdict: nobody could probe it.
    Auto,
    /// Always a server.
    #[default]
    Server,
    /// Always a client.
    Client,
}

impl ModeSetting {
    /// `auto`, `server` or `client`, as in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ModeSetting::Auto => "auto",
            ModeSetting::Server => "server",
            ModeSetting::Client => "client",
        }
    }

    /// The setting `text` names, if it names one.
    pub fn parse(text: &str) -> Option<ModeSetting> {
        match text {
            "auto" => Some(ModeSetting::Auto),
            _ => Mode::parse(text).map(ModeSetting::from),
        }
    }

    /// The mode a node starts in.
    pub(crate) fn initial(self) -> Mode {
        match self {
            ModeSetting::Auto | ModeSetting::Server => Mode::Server,
            ModeSetting::Client => Mode::Client,
        }
    }
}

impl From<Mode> for ModeSetting {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Server => ModeSetting::Server,
            Mode::Client => ModeSetting::Client,
        }
    }
}

impl std::fmt::Display for ModeSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mode in force: the driver writes it, connection tasks read it for each `hello` and
/// each message's `role`.
#[derive(Debug)]
pub(crate) struct ModeCell(AtomicBool);

impl ModeCell {
    pub(crate) fn new(mode: Mode) -> Self {
        ModeCell(AtomicBool::new(mode == Mode::Server))
    }

    pub(crate) fn get(&self) -> Mode {
        if self.0.load(Ordering::Relaxed) {
            Mode::Server
        } else {
            Mode::Client
        }
    }

    pub(crate) fn set(&self, mode: Mode) {
        self.0.store(mode == Mode::Server, Ordering::Relaxed);
    }
}
