//! Deletion and watching in the simulator: a delete that 30% of the network dying and a stale
//! replica put back cannot undo, and a watch that follows its key through churn.

use std::time::Duration;

use bytes::Bytes;
use cairn_core::{Config, Event, Id, Item, SignedItem, Store};
use cairn_sim::scenario::{self, Scenario};
use cairn_sim::{Command, Sim, Ticket};
use ed25519_dalek::SigningKey;
use rand::Rng;
use rand::seq::index::sample;

fn random_live(sim: &mut Sim) -> usize {
    loop {
        let len = sim.len();
        let n = sim.rng().random_range(0..len);
        if sim.is_alive(n) {
            return n;
        }
    }
}

fn run(sim: &mut Sim, tickets: &[Ticket]) {
    assert!(sim.run_until_done(tickets), "every command finishes");
}

#[test]
fn a_delete_survives_30_percent_of_nodes_dying_and_a_stale_replica() {
    let seed = 21;
    println!("seed {seed}");
    let nodes = 1_000;
    let (mut sim, keys, failed) = scenario::network(&Scenario {
        nodes,
        seed,
        ..Scenario::default()
    });
    assert_eq!(failed, 0);
    // 40 signed items, each from a random node, then deleted by it.
    let mut published: Vec<(usize, Item)> = Vec::new();
    let mut tickets = Vec::new();
    for i in 0..40 {
        let node = random_live(&mut sim);
        let item: Item =
            SignedItem::sign(&keys[node], &format!("doc-{i}"), Bytes::from("old"), 1, 0)
                .expect("valid")
                .into();
        tickets.push(sim.schedule(sim.now(), node, Command::Put(item.clone())));
        published.push((node, item));
    }
    run(&mut sim, &tickets);
    let deletes: Vec<Ticket> = published
        .iter()
        .enumerate()
        .map(|(i, (node, _))| {
            let command = Command::Delete {
                key: Box::new(keys[*node].clone()),
                name: format!("doc-{i}"),
                found: None,
            };
            sim.schedule(sim.now(), *node, command)
        })
        .collect();
    run(&mut sim, &deletes);
    for t in &deletes {
        assert!(
            matches!(sim.outcome(*t), Some(Event::PutDone { result: Ok(n), .. }) if *n >= 10),
            "a tombstone reached too few nodes: {:?}",
            sim.outcome(*t)
        );
    }

    // 30% of the nodes die, publishers included if they are drawn, and the network runs for
    // one replicate interval.
    let dead = nodes * 3 / 10;
    for i in sample(sim.rng(), nodes, dead) {
        sim.kill(i);
    }
    let interval = Config::default().replicate_interval + Duration::from_secs(60);
    sim.run_for(interval);
    let (deleted, old) = get_each(&mut sim, &published);
    println!("after the kill: {deleted} gets saw the delete, {old} the old value");
    assert_eq!(old, 0, "no get returns the deleted value");
    assert_eq!(
        deleted,
        3 * published.len(),
        "every get reports the deletion"
    );

    // A stale replica of every item is put again from a random live node: every node that
    // holds the tombstone refuses it, and the node that put it learns of the delete.
    let now = sim.now();
    let holders: Vec<Vec<usize>> = published
        .iter()
        .map(|(_, item)| {
            (0..sim.len())
                .filter(|n| sim.is_alive(*n))
                .filter(|n| {
                    sim.node(*n)
                        .store()
                        .get(item.key(), now)
                        .expect("readable")
                        .is_some()
                })
                .collect()
        })
        .collect();
    let mut replayers = Vec::new();
    let replays: Vec<Ticket> = published
        .iter()
        .map(|(_, item)| {
            let node = random_live(&mut sim);
            replayers.push(node);
            sim.schedule(sim.now(), node, Command::Put(item.clone()))
        })
        .collect();
    run(&mut sim, &replays);
    sim.run_for(Duration::from_secs(10));
    let now = sim.now();
    for (((_, item), holders), replayer) in published.iter().zip(&holders).zip(&replayers) {
        for n in holders {
            let held = sim.node(*n).store().get(item.key(), now).expect("readable");
            assert!(
                held.is_some_and(|h| h.is_tombstone()),
                "node {n} took the stale copy"
            );
        }
        let held = sim
            .node(*replayer)
            .store()
            .get(item.key(), now)
            .expect("readable");
        assert!(
            held.is_some_and(|h| h.is_tombstone()),
            "the replaying node {replayer} learned of the delete"
        );
    }
    // Nodes that held nothing took the stale copy; replication, the replayers' repair and the
    // gets' write-back take it out again.
    let (_, old) = get_each(&mut sim, &published);
    println!("right after the replay: {old} gets saw the old value");
    sim.run_for(interval);
    let (deleted, old) = get_each(&mut sim, &published);
    println!("a replicate interval later: {deleted} gets saw the delete, {old} the old value");
    assert_eq!(
        old, 0,
        "no stale copy is served an interval after the replay"
    );
}

/// Gets each item three times from random live nodes: how many saw the deletion, and how many
/// the old value.
fn get_each(sim: &mut Sim, published: &[(usize, Item)]) -> (usize, usize) {
    let mut gets = Vec::new();
    for (_, item) in published {
        for _ in 0..3 {
            let node = random_live(sim);
            gets.push(sim.schedule(sim.now(), node, Command::Get(*item.key())));
        }
    }
    run(sim, &gets);
    let (mut deleted, mut old) = (0, 0);
    for t in &gets {
        match sim.outcome(*t) {
            Some(Event::GetDone {
                result: Ok(found), ..
            }) if found.is_tombstone() => deleted += 1,
            Some(Event::GetDone { result: Ok(_), .. }) => old += 1,
            _ => {}
        }
    }
    (deleted, old)
}

#[test]
fn a_watch_follows_its_key_through_churn_and_the_loss_of_its_listeners() {
    let seed = 22;
    println!("seed {seed}");
    let nodes = 200;
    let base = Scenario {
        nodes,
        seed,
        ..Scenario::default()
    };
    let (mut sim, keys, failed) = scenario::network(&base);
    assert_eq!(failed, 0);
    let (publisher, watcher) = (0, 1);
    let name = "news";
    let key = cairn_core::signed_key(&keys[publisher].verifying_key().to_bytes(), name);
    let watch = sim.watch(watcher, key);
    sim.run_for(Duration::from_secs(5));
    let first_peers = sim.node(watcher).watch_peers(watch);
    assert_eq!(first_peers.len(), 3, "subscribed at three nodes");

    let mut published = Vec::new();
    for round in 0..12u32 {
        // Churn: every 10 minutes a tenth of the nodes (never the publisher or the watcher)
        // leave, half stopped and half vanished, and as many newcomers join.
        let len = sim.len();
        for (n, i) in sample(sim.rng(), len, nodes / 10).into_iter().enumerate() {
            if i == publisher || i == watcher || !sim.is_alive(i) {
                continue;
            }
            if n % 2 == 0 {
                sim.stop(i);
            } else {
                sim.kill(i);
            }
            let mut seed = [0u8; 32];
            sim.rng().fill(&mut seed);
            let id = Id::of_public_key(&SigningKey::from_bytes(&seed).verifying_key().to_bytes());
            let newcomer = sim.add_node(id, Config::default(), Default::default());
            let seeds = vec![random_live(&mut sim)];
            let ticket = sim.schedule(sim.now(), newcomer, Command::Bootstrap(seeds));
            run(&mut sim, &[ticket]);
        }
        // Halfway, every node the watch listens at stops at once.
        if round == 6 {
            for contact in sim.node(watcher).watch_peers(watch) {
                let index = (0..sim.len())
                    .find(|i| sim.node(*i).id() == &contact.id)
                    .expect("a node");
                sim.stop(index);
            }
        }
        let command = Command::Publish {
            key: Box::new(keys[publisher].clone()),
            name: name.to_owned(),
            value: Bytes::from(format!("version {round}")),
            ttl: None,
        };
        let ticket = sim.schedule(sim.now(), publisher, command);
        run(&mut sim, &[ticket]);
        if let Some(Event::PutDone { seq, .. }) = sim.outcome(ticket) {
            published.push(seq.expect("signed"));
        }
        sim.run_for(Duration::from_secs(600));
    }
    let ticket = sim.schedule(
        sim.now(),
        publisher,
        Command::Delete {
            key: Box::new(keys[publisher].clone()),
            name: name.to_owned(),
            found: None,
        },
    );
    run(&mut sim, &[ticket]);
    sim.run_for(Duration::from_secs(60));

    let seen: Vec<&Item> = sim.watched(watcher, watch).iter().map(|(_, i)| i).collect();
    let seqs: Vec<u64> = seen.iter().filter_map(|i| i.seq()).collect();
    println!(
        "published {} versions; the watch saw {}",
        published.len(),
        seqs.len()
    );
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "each seq once, in order: {seqs:?}"
    );
    assert_eq!(
        &seqs[..published.len()],
        published.as_slice(),
        "every version, each within its 10 minutes"
    );
    assert!(
        seen.last().is_some_and(|i| i.is_tombstone()),
        "and the delete"
    );
    let now_peers = sim.node(watcher).watch_peers(watch);
    assert_eq!(now_peers.len(), 3);
    assert_ne!(now_peers, first_peers, "it moved as the network changed");
}
