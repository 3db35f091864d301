//! Rejoining (see `docs/design.md`, "Rejoining an empty table"): a node whose routing table
//! is empty (every contact it knew went silent, or it restarted while none of the contacts
//! it saved was up) asks again, every [`REJOIN_EVERY`], the addresses it joined through: the
//! seeds of its bootstraps and the contacts restored at its start. Without this, an isolated
//! node stayed alone until some peer happened to contact it, and answered its user's gets
//! with its own copies only, however stale (found by the swarm test, seed 20766).

use std::net::SocketAddr;
use std::time::Duration;

use crate::time::Time;

/// How often a node with an empty routing table tries its rejoin addresses again.
pub(super) const REJOIN_EVERY: Duration = Duration::from_secs(60);

/// The most addresses a node keeps to rejoin through: seeds first, then restored contacts.
pub(super) const MAX_REJOIN_ADDRS: usize = 32;

/// The addresses a node rejoins through, and when it may next try them.
#[derive(Debug, Default)]
pub(super) struct Rejoin {
    addrs: Vec<SocketAddr>,
    /// The earliest time of the next try; set once an address is known.
    due: Option<Time>,
}

impl Rejoin {
    /// Keeps `addrs` (those not kept already, up to [`MAX_REJOIN_ADDRS`] in all) to rejoin
    /// through, at `now`: the first try is [`REJOIN_EVERY`] later, since whoever gave them
    /// is trying them now.
    pub(super) fn remember(&mut self, now: Time, addrs: impl IntoIterator<Item = SocketAddr>) {
        for addr in addrs {
            if self.addrs.len() >= MAX_REJOIN_ADDRS {
                break;
            }
            if !self.addrs.contains(&addr) {
                self.addrs.push(addr);
            }
        }
        if !self.addrs.is_empty() {
            self.due = Some(now + REJOIN_EVERY);
        }
    }

    /// Whether an address to join through is known.
    pub(super) fn can_join(&self) -> bool {
        !self.addrs.is_empty()
    }

    /// When the next try is due, while the table is empty (`alone`).
    pub(super) fn deadline(&self, alone: bool) -> Option<Time> {
        if alone { self.due } else { None }
    }

    /// The addresses to try at `now`, if the table is empty (`alone`) and a try is due; the
    /// next is [`REJOIN_EVERY`] later.
    pub(super) fn due(&mut self, now: Time, alone: bool) -> Option<&[SocketAddr]> {
        self.due.filter(|at| alone && *at <= now)?;
        self.due = Some(now + REJOIN_EVERY);
        Some(&self.addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Time = Time::from_secs(1_000);

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 7400))
    }

    #[test]
    fn tries_only_while_alone_and_once_per_interval() {
        let mut rejoin = Rejoin::default();
        assert_eq!(rejoin.deadline(true), None, "nothing to try");
        assert_eq!(rejoin.due(T0, true), None);
        rejoin.remember(T0, [addr(1), addr(2), addr(1)]);
        let first = T0 + REJOIN_EVERY;
        assert_eq!(rejoin.deadline(true), Some(first));
        assert_eq!(
            rejoin.deadline(false),
            None,
            "a node with contacts waits for nothing"
        );
        assert_eq!(rejoin.due(first, false), None);
        assert_eq!(rejoin.due(first - Duration::from_secs(1), true), None);
        assert_eq!(rejoin.due(first, true), Some(&[addr(1), addr(2)][..]));
        assert_eq!(rejoin.due(first, true), None, "once per interval");
        assert_eq!(rejoin.deadline(true), Some(first + REJOIN_EVERY));
        // Alone again long after: tried at once, then an interval later.
        let late = first + Duration::from_secs(3_600);
        assert!(rejoin.due(late, true).is_some());
        assert_eq!(rejoin.deadline(true), Some(late + REJOIN_EVERY));
    }

    #[test]
    fn keeps_at_most_its_bound_seeds_first() {
        let mut rejoin = Rejoin::default();
        rejoin.remember(T0, [addr(200)]);
        rejoin.remember(T0, (0..100).map(addr));
        let tried = rejoin.due(T0 + REJOIN_EVERY, true).expect("due").to_vec();
        assert_eq!(tried.len(), MAX_REJOIN_ADDRS);
        assert_eq!(tried[0], addr(200));
    }
}
