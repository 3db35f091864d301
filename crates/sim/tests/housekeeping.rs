//! Housekeeping in the simulator: replication after mass failure, expiry, and a node that
//! comes back getting the items it is now closest to.

use std::time::Duration;

use bytes::Bytes;
use cairn_core::{Config, Event, ImmutableItem, Item, SignedItem, Store};
use cairn_sim::scenario::{self, Scenario};
use cairn_sim::{Command, Sim, Ticket};
use ed25519_dalek::SigningKey;
use rand::Rng;
use rand::seq::index::sample;

const NODES: usize = 300;

fn scenario(seed: u64) -> Scenario {
    println!("seed {seed}");
    Scenario {
        nodes: NODES,
        seed,
        ..Scenario::default()
    }
}

/// Puts `count` items (alternately signed and immutable) from random live nodes.
fn put_items(sim: &mut Sim, keys: &[SigningKey], count: usize, expires: u64) -> Vec<Item> {
    let mut items = Vec::new();
    let mut tickets = Vec::new();
    for i in 0..count {
        let node = loop {
            let len = sim.len();
            let n = sim.rng().random_range(0..len);
            if sim.is_alive(n) {
                break n;
            }
        };
        let value = Bytes::from(format!("value {i}"));
        let item: Item = if i % 2 == 0 || expires != 0 {
            SignedItem::sign(&keys[node], &format!("item-{i}"), value, 1, expires)
                .expect("valid")
                .into()
        } else {
            ImmutableItem::new(value).into()
        };
        tickets.push(sim.schedule(sim.now(), node, Command::Put(item.clone())));
        items.push(item);
    }
    assert!(sim.run_until_done(&tickets));
    items
}

/// Gets every item from a random live node; returns how many were found intact.
fn get_all(sim: &mut Sim, items: &[Item]) -> usize {
    let live: Vec<usize> = (0..sim.len()).filter(|i| sim.is_alive(*i)).collect();
    let tickets: Vec<(Ticket, &Item)> = items
        .iter()
        .map(|item| {
            let node = live[sim.rng().random_range(0..live.len())];
            (
                sim.schedule(sim.now(), node, Command::Get(*item.key())),
                item,
            )
        })
        .collect();
    let all: Vec<Ticket> = tickets.iter().map(|(t, _)| *t).collect();
    assert!(sim.run_until_done(&all));
    tickets
        .iter()
        .filter(|(t, item)| matches!(sim.outcome(*t), Some(Event::GetDone { result: Ok(found), .. }) if found == *item))
        .count()
}

#[test]
fn replication_restores_replicas_after_half_the_nodes_die() {
    let config = Config::default();
    let k = config.k.get();
    let (mut sim, keys, failed) = scenario::network(&scenario(11));
    assert_eq!(failed, 0);
    let items = put_items(&mut sim, &keys, 60, 0);
    // Let the network settle into its steady rhythm of replication first.
    sim.run_for(config.replicate_interval);

    let victims = sample(sim.rng(), NODES, NODES / 2).into_vec();
    for v in victims {
        sim.kill(v);
    }
    sim.run_for(config.replicate_interval);

    let counts: Vec<usize> = items
        .iter()
        .map(|item| {
            sim.closest_live(item.key(), k)
                .iter()
                .filter(|n| sim.holds(**n, item.key()))
                .count()
        })
        .collect();
    println!("holders {counts:?}");
    for item in &items {
        let closest = sim.closest_live(item.key(), k);
        let holders = closest
            .iter()
            .filter(|n| sim.holds(**n, item.key()))
            .count();
        assert!(
            holders >= k / 2,
            "{:?} has only {holders} live replicas among the {k} closest",
            item.key()
        );
    }
    assert_eq!(get_all(&mut sim, &items), items.len(), "every get succeeds");
}

#[test]
fn an_item_with_a_ttl_is_gone_from_every_node_after_it_expires() {
    let config = Config::default();
    let (mut sim, keys, _) = scenario::network(&scenario(12));
    let expires = sim.now().as_secs() + 600;
    let mortal = put_items(&mut sim, &keys, 10, expires);
    let lasting = put_items(&mut sim, &keys, 4, 0);
    assert!(
        mortal
            .iter()
            .all(|item| (0..NODES).any(|n| sim.holds(n, item.key())))
    );

    sim.run_for(Duration::from_secs(600) + config.expire_interval);
    let now = sim.now();
    for item in &mortal {
        assert!(item.is_expired(now));
        let left = (0..NODES)
            .filter(|n| sim.node(*n).store().keys().contains(item.key()))
            .count();
        assert_eq!(left, 0, "an expired item is still stored on {left} nodes");
    }
    assert_eq!(get_all(&mut sim, &mortal), 0);
    assert_eq!(
        get_all(&mut sim, &lasting),
        lasting.len(),
        "items without a TTL stay"
    );
}

#[test]
fn a_node_that_comes_back_gets_the_items_it_is_now_closest_to() {
    let config = Config::default();
    let k = config.k.get();
    let (mut sim, keys, _) = scenario::network(&scenario(13));
    let away = 17;
    sim.kill(away);
    let items = put_items(&mut sim, &keys, 200, 0);
    assert!(
        items.iter().all(|i| !sim.holds(away, i.key())),
        "it was away for the puts"
    );
    sim.run_for(config.replicate_interval);

    sim.revive(away);
    let seeds = vec![(away + 1) % NODES, (away + 2) % NODES];
    let back = sim.schedule(sim.now(), away, Command::Bootstrap(seeds));
    assert!(sim.run_until_done(&[back]));
    sim.run_for(config.replicate_interval);

    let due: Vec<&Item> = items
        .iter()
        .filter(|i| sim.closest_live(i.key(), k).contains(&away))
        .collect();
    println!(
        "{} of {} items have the returning node among their {k} closest",
        due.len(),
        items.len()
    );
    assert!(!due.is_empty(), "the test needs items the node is close to");
    for item in &due {
        assert!(
            sim.holds(away, item.key()),
            "{:?} did not reach the returning node",
            item.key()
        );
    }
}
