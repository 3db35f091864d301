//! Who waits on the driver: callers of running commands, and answers held until the store's
//! commit lands.
//!
//! A command's completion event becomes its caller's reply here. A `stored` answer to a peer
//! or a put's receipt whose local copy is not yet durable is held under its [`CommitId`] and
//! released when the store reports that commit: as it was if the commit is durable, as an
//! error 500 (peer) or [`PutError::NotDurable`] (caller) if it failed. The core's outcomes
//! become the caller's errors in [`crate::error`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use cairn_core::datagram::Reply;
use cairn_core::{
    Answer, CommitId, Contact, ErrorCode, ErrorReply, Event, Message, QueryId, Response,
};
use tokio::sync::{mpsc, oneshot};

use crate::error::{
    BootstrapError, FindNodeError, GetError, MismatchedEvent, PutError, SeedFailure,
    bootstrap_outcome, get_outcome, mismatched, put_error,
};
use crate::outcome::{Found, PutReceipt};
use crate::store::CommitError;

/// How many failed commits' reasons are kept for the puts that learn of them from the core: a
/// put's lookup would have to outlast this many failed commits to be told a stopped writer.
const FAILED_COMMITS_KEPT: usize = 64;

/// Who is waiting for a command to finish.
pub(super) enum Waiter {
    Put(oneshot::Sender<Result<PutReceipt, PutError>>),
    Get(oneshot::Sender<Result<Found, GetError>>),
    FindNode(oneshot::Sender<Result<Vec<Contact>, FindNodeError>>),
    Bootstrap {
        reply: oneshot::Sender<Result<usize, BootstrapError>>,
        seeds: Vec<SocketAddr>,
        /// Why seeds failed, as their connections ended.
        heard: Vec<(SocketAddr, SeedFailure)>,
    },
}

impl Waiter {
    /// The kind of command waited for.
    fn kind(&self) -> &'static str {
        match self {
            Waiter::Put(_) => "put",
            Waiter::Get(_) => "get",
            Waiter::FindNode(_) => "find_node",
            Waiter::Bootstrap { .. } => "bootstrap",
        }
    }

    /// Tells the caller that its command ended with another command's kind of event.
    fn mismatched(self, bug: MismatchedEvent) {
        tracing::error!("{bug}");
        // A caller that gave up hears nothing, as with any reply.
        match self {
            Waiter::Put(reply) => drop(reply.send(Err(PutError::Internal(bug)))),
            Waiter::Get(reply) => drop(reply.send(Err(GetError::Internal(bug)))),
            Waiter::FindNode(reply) => drop(reply.send(Err(FindNodeError::Internal(bug)))),
            Waiter::Bootstrap { reply, .. } => {
                drop(reply.send(Err(BootstrapError::Internal(bug))));
            }
        }
    }
}

/// The kind of command an event completes.
fn event_kind(event: &Event) -> &'static str {
    match event {
        Event::PutDone { .. } => "put",
        Event::GetDone { .. } => "get",
        Event::FindNodeDone { .. } => "find_node",
        Event::BootstrapDone { .. } => "bootstrap",
        _ => "other",
    }
}

/// An answer that may go out only once a commit is durable.
enum Held {
    /// A `stored` answer to request `id` of a peer.
    Stored {
        id: u64,
        reply: mpsc::Sender<Box<Message>>,
    },
    /// A local put's receipt.
    Put {
        reply: oneshot::Sender<Result<PutReceipt, PutError>>,
        receipt: Result<PutReceipt, PutError>,
    },
    /// A `stored` answer to a peer's request over datagrams.
    Datagram { reply: Reply },
    /// A `notify` of a copy not durable yet; dropped if the commit fails.
    Notify {
        reply: mpsc::Sender<Box<Message>>,
        message: Box<Message>,
    },
}

#[derive(Default)]
pub(super) struct Waiters {
    commands: HashMap<QueryId, Waiter>,
    /// Several answers may wait on one commit: a copy stored again before its first commit
    /// landed waits on that commit.
    held: HashMap<CommitId, Vec<Held>>,
    /// The reasons of the latest failed commits (at most [`FAILED_COMMITS_KEPT`]): a put whose
    /// commit failed while its lookup ran learns it from the core by the commit's id alone.
    failed_commits: VecDeque<(CommitId, CommitError)>,
}

impl Waiters {
    pub(super) fn insert(&mut self, query: QueryId, waiter: Waiter) {
        self.commands.insert(query, waiter);
    }

    /// A connection to `addr` could not be opened: a bootstrap through it says why.
    pub(super) fn dial_failed(&mut self, addr: SocketAddr, failure: &SeedFailure) {
        for waiter in self.commands.values_mut() {
            if let Waiter::Bootstrap { seeds, heard, .. } = waiter {
                if seeds.contains(&addr) && !heard.iter().any(|(a, _)| *a == addr) {
                    heard.push((addr, failure.clone()));
                }
            }
        }
    }

    /// Whether nobody waits, for a command or for a commit.
    pub(super) fn is_empty(&self) -> bool {
        self.commands.is_empty() && self.held.is_empty()
    }

    /// Whether any answer waits for a commit.
    pub(super) fn holds_answers(&self) -> bool {
        !self.held.is_empty()
    }

    /// Sends the answer to a peer's request `id`, or holds it until its commit lands.
    pub(super) fn answer(&mut self, id: u64, answer: Answer, reply: mpsc::Sender<Box<Message>>) {
        match answer.commit {
            Some(commit) => self
                .held
                .entry(commit)
                .or_default()
                .push(Held::Stored { id, reply }),
            None => send_now(&reply, id, answer.response),
        }
    }

    /// Holds the answer to a peer's request over datagrams until `commit` lands.
    pub(super) fn hold_datagram(&mut self, commit: CommitId, reply: Reply) {
        self.held
            .entry(commit)
            .or_default()
            .push(Held::Datagram { reply });
    }

    /// Sends a `notify` on an incoming connection, or holds it until its copy is durable.
    pub(super) fn notify(
        &mut self,
        commit: Option<CommitId>,
        reply: mpsc::Sender<Box<Message>>,
        message: Box<Message>,
        room: usize,
    ) {
        match commit {
            Some(commit) => self
                .held
                .entry(commit)
                .or_default()
                .push(Held::Notify { reply, message }),
            None => send_notify(&reply, message, room),
        }
    }

    /// Turns a command's completion event into its caller's reply.
    pub(super) fn event(&mut self, event: Event) {
        let Some((query, waiter)) = event
            .query()
            .and_then(|q| self.commands.remove(&q).map(|w| (q, w)))
        else {
            return;
        };
        match (event, waiter) {
            (
                Event::PutDone {
                    key,
                    seq,
                    expires,
                    result,
                    commit,
                    stats,
                    ..
                },
                Waiter::Put(reply),
            ) => {
                let receipt = result
                    .map(|replicas| PutReceipt {
                        key,
                        seq,
                        expires,
                        replicas,
                        stats,
                    })
                    .map_err(|e| put_error(e, |commit| self.failure_of(commit)));
                match commit {
                    Some(commit) => self
                        .held
                        .entry(commit)
                        .or_default()
                        .push(Held::Put { reply, receipt }),
                    None => {
                        let _ = reply.send(receipt);
                    }
                }
            }
            (
                Event::GetDone {
                    key, result, stats, ..
                },
                Waiter::Get(reply),
            ) => {
                let _ = reply.send(get_outcome(key, result, stats));
            }
            (Event::FindNodeDone { closest, .. }, Waiter::FindNode(reply)) => {
                let _ = reply.send(Ok(closest));
            }
            (
                Event::BootstrapDone { result, .. },
                Waiter::Bootstrap {
                    reply,
                    seeds,
                    heard,
                },
            ) => {
                let _ = reply.send(bootstrap_outcome(result, &seeds, heard));
            }
            (event, waiter) => {
                let bug = mismatched(query, waiter.kind(), event_kind(&event));
                waiter.mismatched(bug);
            }
        }
    }

    /// Why `commit` failed, if it is among the latest failed commits.
    fn failure_of(&self, commit: CommitId) -> Option<CommitError> {
        let mut kept = self.failed_commits.iter();
        kept.find(|(c, _)| *c == commit).map(|(_, e)| e.clone())
    }

    /// The store reported `commit`: releases whatever waited on it (`room`: the answers'
    /// room a `notify` must leave in a connection's queue), and returns the answers to
    /// requests over datagrams, for the plane to send.
    pub(super) fn committed(
        &mut self,
        commit: CommitId,
        result: &Result<(), CommitError>,
        room: usize,
    ) -> Vec<(Reply, Response)> {
        let mut datagrams = Vec::new();
        if let Err(e) = result {
            if self.failed_commits.len() == FAILED_COMMITS_KEPT {
                self.failed_commits.pop_front();
            }
            self.failed_commits.push_back((commit, e.clone()));
        }
        for held in self.held.remove(&commit).unwrap_or_default() {
            match (held, result) {
                (Held::Stored { id, reply }, Ok(())) => {
                    send_held(reply, id, Response::Stored);
                }
                (Held::Stored { id, reply }, Err(e)) => {
                    send_held(reply, id, Response::Error(commit_failed(e)));
                }
                (Held::Put { reply, receipt }, Ok(())) => {
                    let _ = reply.send(receipt);
                }
                (Held::Put { reply, .. }, Err(e)) => {
                    let _ = reply.send(Err(PutError::NotDurable(e.clone())));
                }
                (Held::Notify { reply, message }, Ok(())) => send_notify(&reply, message, room),
                (Held::Notify { .. }, Err(_)) => {}
                (Held::Datagram { reply }, Ok(())) => datagrams.push((reply, Response::Stored)),
                (Held::Datagram { reply }, Err(e)) => {
                    datagrams.push((reply, Response::Error(commit_failed(e))));
                }
            }
        }
        datagrams
    }
}

/// The answer to a peer's `store` whose commit failed: 503 saying so when the disk is full,
/// else 500 as for any failed commit.
fn commit_failed(error: &CommitError) -> ErrorReply {
    if error.is_disk_full() {
        ErrorReply::new(
            ErrorCode::UNAVAILABLE,
            "the disk is full; nothing was stored",
        )
    } else {
        ErrorReply::new(
            ErrorCode::INTERNAL,
            "the store failed to commit; nothing was stored",
        )
    }
}

/// Sends an answer without waiting. A connection whose reply queue is full loses it.
fn send_now(reply: &mpsc::Sender<Box<Message>>, id: u64, response: Response) {
    if reply
        .try_send(Box::new(Message::Response { id, response }))
        .is_err()
    {
        tracing::debug!("a connection's reply queue is full; dropping a response");
    }
}

/// Sends a `notify` if the connection's queue has room beyond the `room` kept for answers;
/// otherwise the dialer is not reading, and it is dropped (the dialer's next renewal brings the
/// newest copy).
fn send_notify(reply: &mpsc::Sender<Box<Message>>, message: Box<Message>, room: usize) {
    if reply.capacity() <= room || reply.try_send(message).is_err() {
        tracing::debug!("a connection's notify queue is full; dropping a notify");
    }
}

/// Sends an answer that waited for a commit; if the connection's queue is full it waits for
/// room in a task of its own rather than lose an acknowledged store.
fn send_held(reply: mpsc::Sender<Box<Message>>, id: u64, response: Response) {
    let message = Box::new(Message::Response { id, response });
    if let Err(mpsc::error::TrySendError::Full(message)) = reply.try_send(message) {
        tokio::spawn(async move {
            let _ = reply.send(message).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_core::{Key, QueryStats};

    use super::*;

    fn put_done(
        query: u64,
        result: Result<usize, cairn_core::PutFailure>,
        commit: Option<CommitId>,
    ) -> Event {
        Event::PutDone {
            query: QueryId(query),
            key: Key::hash(b"a key"),
            seq: None,
            expires: 0,
            result,
            commit,
            stats: QueryStats::default(),
        }
    }

    fn disk_failure() -> CommitError {
        CommitError::Database(Arc::new(::redb::Error::Io(std::io::Error::other(
            "the disk is on fire",
        ))))
    }

    fn not_durable_reason(answer: Result<PutReceipt, PutError>) -> String {
        match answer {
            Err(PutError::NotDurable(reason)) => reason.to_string(),
            other => panic!("expected NotDurable, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_commit_is_not_durable_with_its_reason_whenever_it_is_reported() {
        let mut waiters = Waiters::default();
        // Reported after the lookup: the receipt waited on the commit.
        let (reply, mut after) = oneshot::channel();
        waiters.insert(QueryId(1), Waiter::Put(reply));
        waiters.event(put_done(1, Ok(3), Some(CommitId(10))));
        waiters.committed(CommitId(10), &Err(disk_failure()), 1);
        let after = not_durable_reason(after.try_recv().expect("answered"));
        // Reported while the lookup ran: the core says only that the commit failed.
        let (reply, mut during) = oneshot::channel();
        waiters.insert(QueryId(2), Waiter::Put(reply));
        waiters.committed(CommitId(11), &Err(disk_failure()), 1);
        let failed = Err(cairn_core::PutFailure::NotDurable(CommitId(11)));
        waiters.event(put_done(2, failed, None));
        let during = not_durable_reason(during.try_recv().expect("answered"));
        assert_eq!(during, after);
        assert!(during.contains("the disk is on fire"), "{during}");
    }

    #[test]
    fn a_store_refused_for_a_full_disk_is_answered_503_saying_so_and_other_failures_500() {
        let full = CommitError::DiskFull(Arc::new(::redb::Error::Io(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "no space left on device",
        ))));
        let refused = CommitError::Unavailable(crate::store::StorageDown::DiskFull);
        for error in [full, refused] {
            let reply = commit_failed(&error);
            assert_eq!(reply.code, ErrorCode::UNAVAILABLE);
            assert!(
                reply.message.contains("the disk is full"),
                "{}",
                reply.message
            );
        }
        let reopening = CommitError::Unavailable(crate::store::StorageDown::Failed);
        for error in [disk_failure(), reopening] {
            let other = commit_failed(&error);
            assert_eq!(other.code, ErrorCode::INTERNAL);
            assert_eq!(
                other.message,
                "the store failed to commit; nothing was stored"
            );
        }
    }

    #[test]
    fn a_command_ended_by_another_kinds_event_tells_its_caller_why() {
        let mut waiters = Waiters::default();
        let (reply, mut answer) = oneshot::channel();
        waiters.insert(QueryId(7), Waiter::Get(reply));
        waiters.event(put_done(7, Ok(1), None));
        let bug = MismatchedEvent {
            query: 7,
            expected: "get",
            event: "put",
        };
        assert_eq!(
            answer.try_recv().expect("answered"),
            Err(GetError::Internal(bug))
        );
        assert!(waiters.is_empty());
    }
}
