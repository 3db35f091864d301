//! Property tests: lookups terminate, respect alpha, and return the k closest that answered.

use std::collections::{BTreeSet, HashMap};

use super::*;
use proptest::prelude::*;
use std::time::Duration;

fn params(k: usize, alpha: usize) -> LookupParams {
    LookupParams { k, alpha, paths: 1 }
}

fn contact(n: u64) -> Contact {
    let mut bytes = [0u8; 64];
    // Spread ids over the space with a cheap deterministic mix.
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x1234_5678;
    for chunk in bytes.chunks_mut(8) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        chunk.copy_from_slice(&x.to_be_bytes());
    }
    Contact::new(Id::from_bytes(bytes), "127.0.0.1:1".parse().expect("valid"))
}

#[derive(Clone, Copy, Debug)]
enum Behaviour {
    Answers,
    Fails,
    Silent,
    /// Runs past its round-trip timeout (its slot is freed), then answers.
    Late,
}

#[derive(Clone, Debug)]
struct Network {
    /// Each node's behaviour and the nodes it knows.
    nodes: Vec<(Behaviour, Vec<usize>)>,
}

fn network() -> impl Strategy<Value = Network> {
    (5usize..60).prop_flat_map(|n| {
        let behaviour = prop_oneof![6 => Just(Behaviour::Answers), 1 => Just(Behaviour::Fails), 1 => Just(Behaviour::Silent), 1 => Just(Behaviour::Late)];
        prop::collection::vec((behaviour, prop::collection::vec(0..n, 0..12)), n)
            .prop_map(|nodes| Network { nodes })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn terminates_respects_alpha_and_returns_the_closest_that_answered(
        net in network(),
        k in 1usize..8,
        alpha in 1usize..4,
        paths in 1usize..4,
        seeds in prop::collection::vec(any::<prop::sample::Index>(), 1..5),
        choices in prop::collection::vec(any::<prop::sample::Index>(), 400),
        round_trips in prop::collection::vec(0u64..300, 60),
    ) {
        let n = net.nodes.len();
        let target = contact(10_000).id;
        let by_id: HashMap<NodeId, usize> = (0..n).map(|i| (contact(i as u64).id, i)).collect();
        let seeds: Vec<Contact> = seeds.iter().map(|s| contact(s.index(n) as u64)).collect();
        let mut lookup = Lookup::new(target, LookupParams { k, alpha, paths }, seeds);
        let mut waiting: Vec<usize> = Vec::new();
        // Late nodes whose slot was freed, and whose answer is still to come.
        let mut overdue: Vec<usize> = Vec::new();
        let mut answered = BTreeSet::new();
        let mut steps = 0;
        let mut choices = choices.into_iter().cycle();
        loop {
            steps += 1;
            prop_assert!(steps < 10_000, "lookup did not terminate");
            // Each node has its own expected round trip, which orders equals.
            let rtt = |id: &NodeId| Duration::from_millis(round_trips[by_id.get(id).copied().unwrap_or(0) % 60]);
            match lookup.next_by(rtt) {
                Next::Send(Peer { id: Some(id), .. }) => {
                    // A path sends only with a slot free: alpha, or k once it stalled.
                    let path = lookup.path(&id).expect("a candidate");
                    prop_assert!(lookup.path_state[path].in_flight <= lookup.capacity(path));
                    waiting.push(by_id[&id]);
                    continue;
                }
                Next::Send(Peer { id: None, .. }) => prop_assert!(false, "a lookup peer has an id"),
                Next::Finished => break,
                Next::Wait => {}
            }
            // Progress brings a stalled path back to alpha with up to k still out.
            prop_assert!(lookup.in_flight() <= k.max(alpha) * paths);
            // Settle one outstanding request, or let time pass for the silent ones; now and
            // then a late node's answer arrives.
            let Some(choice) = choices.next() else { unreachable!() };
            if !overdue.is_empty() && (waiting.is_empty() || choice.index(3) == 0) {
                let i = overdue.remove(choice.index(overdue.len()));
                let known = net.nodes[i].1.iter().map(|j| contact(*j as u64));
                prop_assert!(lookup.on_success(&contact(i as u64).id, known), "a late answer is taken");
                answered.insert(contact(i as u64).id.distance(&target));
                continue;
            }
            let pick = choice.index(waiting.len().max(1));
            let node = waiting.get(pick).copied();
            match node.map(|i| (i, net.nodes[i].0)) {
                Some((i, Behaviour::Answers)) => {
                    waiting.remove(pick);
                    let known = net.nodes[i].1.iter().map(|j| contact(*j as u64));
                    prop_assert!(lookup.on_success(&contact(i as u64).id, known));
                    answered.insert(contact(i as u64).id.distance(&target));
                }
                Some((i, Behaviour::Fails)) => {
                    waiting.remove(pick);
                    prop_assert!(lookup.on_failure(&contact(i as u64).id));
                }
                // A silent node's request passes its deadline; the node tells the lookup.
                Some((i, Behaviour::Silent)) => {
                    waiting.remove(pick);
                    prop_assert!(lookup.on_timeout(&contact(i as u64).id));
                }
                // A late node's request passes its round-trip timeout: its slot is freed.
                Some((i, Behaviour::Late)) => {
                    waiting.remove(pick);
                    prop_assert!(lookup.on_timeout(&contact(i as u64).id));
                    overdue.push(i);
                }
                None => {}
            }
        }
        let result = lookup.closest_succeeded(k);
        let expected: Vec<Distance> = answered.iter().take(k).copied().collect();
        let got: Vec<Distance> = result.iter().map(|c| c.id.distance(&target)).collect();
        prop_assert_eq!(got, expected);
        prop_assert!(lookup.is_finished());
    }
}

/// `n` contacts sorted by distance to `target`.
fn sorted_contacts(n: u64, target: &Id) -> Vec<Contact> {
    let mut contacts: Vec<Contact> = (0..n).map(contact).collect();
    contacts.sort_by_key(|c| c.id.distance(target));
    contacts
}

/// Every peer `lookup` asks before it has to wait.
fn asked_now(lookup: &mut Lookup) -> Vec<Contact> {
    let mut asked = Vec::new();
    while let Next::Send(peer) = lookup.next() {
        asked.push(Contact::new(
            peer.id.expect("a lookup peer has an id"),
            peer.addr,
        ));
    }
    asked
}

#[test]
fn a_stalled_lookup_asks_every_candidate_left_among_the_k_closest_at_once() {
    let target = contact(99_999).id;
    let all = sorted_contacts(10, &target);
    let mut lookup = Lookup::new(target, params(8, 2), all.clone());
    assert_eq!(asked_now(&mut lookup), all[..2], "alpha at first");
    assert!(lookup.on_success(&all[0].id, []));
    assert_eq!(
        asked_now(&mut lookup),
        all[2..3],
        "one answer without progress"
    );
    assert!(lookup.on_success(&all[1].id, [all[9]]), "nobody closer");
    assert_eq!(
        asked_now(&mut lookup),
        all[3..8],
        "two answers in a row named nobody closer: the rest of the 8 closest at once"
    );
    for contact in &all[2..8] {
        assert!(lookup.on_success(&contact.id, []));
    }
    assert_eq!(lookup.next(), Next::Finished);
    assert_eq!(lookup.requests(), 8, "nobody past the k closest was asked");
}

#[test]
fn each_path_stalls_and_widens_on_its_own() {
    let target = contact(99_999).id;
    let all = sorted_contacts(6, &target);
    // Path 0 starts from the 1st, 3rd and 5th closest, path 1 from the others.
    let mut lookup = Lookup::new(
        target,
        LookupParams {
            k: 3,
            alpha: 1,
            paths: 2,
        },
        all.clone(),
    );
    assert_eq!(
        asked_now(&mut lookup),
        [all[0], all[1]],
        "alpha on each path"
    );
    assert!(lookup.on_success(&all[0].id, []), "path 0 stalls");
    assert_eq!(
        asked_now(&mut lookup),
        [all[2], all[4]],
        "path 0 asks the rest of its k closest; path 1 keeps to alpha"
    );
}

#[test]
fn a_lookup_receiving_what_it_looks_for_does_not_widen() {
    let target = contact(99_999).id;
    let all = sorted_contacts(12, &target);
    let mut lookup = Lookup::new(target, params(10, 2), all.clone());
    assert_eq!(asked_now(&mut lookup), all[..2]);
    assert!(lookup.on_found(&all[0].id), "a copy");
    assert!(lookup.on_found(&all[1].id), "another");
    assert_eq!(asked_now(&mut lookup), all[2..4], "still alpha");
    assert!(lookup.on_success(&all[2].id, []));
    assert!(
        lookup.on_found(&all[3].id),
        "a copy ends the run of empty answers"
    );
    assert_eq!(asked_now(&mut lookup), all[4..6], "still alpha");
    assert!(lookup.on_success(&all[4].id, []));
    assert_eq!(asked_now(&mut lookup), all[6..7], "one empty answer");
    assert!(lookup.on_success(&all[5].id, []));
    assert_eq!(
        asked_now(&mut lookup),
        all[7..10],
        "two empty answers in a row: stalled, the rest of the 10 closest at once"
    );
}

#[test]
fn an_answer_that_names_somebody_closer_brings_a_stalled_lookup_back_to_alpha() {
    let target = contact(99_999).id;
    let all = sorted_contacts(7, &target);
    let (closest, known) = (all[0], &all[1..]);
    let mut lookup = Lookup::new(target, params(4, 1), known.to_vec());
    assert_eq!(asked_now(&mut lookup), known[..1]);
    assert!(lookup.on_success(&known[0].id, []), "stalled");
    assert_eq!(
        asked_now(&mut lookup),
        known[1..4],
        "the rest of the k closest"
    );
    assert!(lookup.on_success(&known[1].id, [closest]), "progress");
    assert_eq!(
        asked_now(&mut lookup),
        [],
        "two requests still out, alpha is 1: the closer node waits"
    );
    assert!(lookup.on_success(&known[2].id, []), "stalled again");
    assert_eq!(asked_now(&mut lookup), [closest]);
    assert!(lookup.on_success(&known[3].id, []));
    assert!(lookup.on_success(&closest.id, []));
    assert_eq!(lookup.next(), Next::Finished);
    assert_eq!(
        lookup.closest_succeeded(4),
        [closest, known[0], known[1], known[2]]
    );
}

#[test]
fn converges_on_the_true_closest_when_everyone_answers() {
    // 200 nodes, each knowing every node: the lookup must find the exact 5 closest.
    let nodes: Vec<Contact> = (0..200).map(contact).collect();
    let target = contact(99_999).id;
    let mut lookup = Lookup::new(target, params(5, 3), nodes[..3].to_vec());
    while let Next::Send(Peer { id: Some(id), .. }) = lookup.next() {
        let mut closest = nodes.clone();
        closest.sort_by_key(|n| n.id.distance(&target));
        closest.truncate(5);
        assert!(lookup.on_success(&id, closest));
    }
    let mut expected = nodes.clone();
    expected.sort_by_key(|n| n.id.distance(&target));
    assert_eq!(lookup.closest_succeeded(5), expected[..5].to_vec());
    assert_eq!(lookup.next(), Next::Finished);
}

#[test]
fn timeout_frees_the_slot_and_late_answer_counts() {
    let a = contact(1);
    let b = contact(2);
    let target = contact(3).id;
    let (first, second) = if a.id.distance(&target) < b.id.distance(&target) {
        (a, b)
    } else {
        (b, a)
    };
    let mut lookup = Lookup::new(target, params(2, 1), [a, b]);
    assert_eq!(lookup.next(), Next::Send(first.into()));
    assert_eq!(lookup.next(), Next::Wait, "alpha is 1");
    assert!(lookup.on_timeout(&first.id), "the request was waiting");
    assert_eq!(
        lookup.next(),
        Next::Send(second.into()),
        "the timeout freed the slot"
    );
    assert!(lookup.on_success(&first.id, []), "a late answer is taken");
    assert!(lookup.on_success(&second.id, []));
    assert_eq!(lookup.next(), Next::Finished);
    assert_eq!(lookup.closest_succeeded(2), vec![first, second]);
    assert_eq!(lookup.requests(), 2);
}

#[test]
fn disjoint_paths_never_share_a_node() {
    let target = contact(10_000).id;
    let mut seeds: Vec<Contact> = (0..2).map(contact).collect();
    seeds.sort_by_key(|c| c.id.distance(&target));
    let lookup_params = LookupParams {
        k: 20,
        alpha: 1,
        paths: 2,
    };
    let mut lookup = Lookup::new(target, lookup_params, seeds.clone());
    let mut asked: Vec<NodeId> = Vec::new();
    let send = |lookup: &mut Lookup| match lookup.next() {
        Next::Send(Peer { id: Some(id), .. }) => id,
        other => panic!("expected a request, got {other:?}"),
    };
    // One request per path at once (alpha 1): both seeds are asked, each on its own path.
    let (first, second) = (send(&mut lookup), send(&mut lookup));
    assert_eq!([first, second], [seeds[0].id, seeds[1].id]);
    assert_eq!(lookup.next(), Next::Wait);
    // Both tell of node 5; only the path that heard of it first asks it.
    assert!(lookup.on_success(&first, [contact(5), contact(6)]));
    assert!(lookup.on_success(&second, [contact(5), contact(7)]));
    while let Next::Send(Peer { id: Some(id), .. }) = lookup.next() {
        assert!(!asked.contains(&id), "asked twice");
        asked.push(id);
        assert!(lookup.on_success(&id, []));
    }
    let mut expected = vec![contact(5).id, contact(6).id, contact(7).id];
    expected.sort();
    asked.sort();
    assert_eq!(asked, expected, "node 5 once, by one path");
    assert!(lookup.is_finished());
    assert_eq!(lookup.closest_succeeded(20).len(), 5);
}

#[test]
fn equals_are_asked_fastest_first_but_never_before_a_closer_bucket() {
    let target = contact(10_000).id;
    let mut nodes: Vec<Contact> = (0..200).map(contact).collect();
    nodes.sort_by_key(|c| c.id.distance(&target));
    let bucket = |c: &Contact| c.id.distance(&target).bucket_index();
    // The two closest contacts that share a bucket of the target's, and the closest one in a
    // farther bucket.
    let pair = nodes
        .windows(2)
        .position(|w| bucket(&w[0]) == bucket(&w[1]))
        .expect("200 ids have two in one bucket");
    let (near, fast) = (nodes[pair], nodes[pair + 1]);
    let farther = *nodes[pair + 2..]
        .iter()
        .find(|c| bucket(c) != bucket(&near))
        .expect("a farther bucket");
    // The farther contact is the fastest of all, then the second of the pair, then the first.
    let rtt = |id: &NodeId| match *id {
        id if id == farther.id => Duration::from_millis(1),
        id if id == fast.id => Duration::from_millis(10),
        _ => Duration::from_millis(100),
    };
    let mut lookup = Lookup::new(target, params(20, 1), [farther, near, fast]);
    let mut asked = Vec::new();
    while let Next::Send(Peer { id: Some(id), .. }) = lookup.next_by(rtt) {
        asked.push(id);
        assert!(lookup.on_success(&id, []));
    }
    assert_eq!(asked, vec![fast.id, near.id, farther.id]);
    // Without round trips, closest first.
    let mut lookup = Lookup::new(target, params(20, 1), [farther, near, fast]);
    assert_eq!(lookup.next(), Next::Send(near.into()));
}

#[test]
fn a_lookup_that_waits_for_slow_requests_ends_once_each_answered_or_failed() {
    // Found by the swarm test: a get whose contacts were slower than their estimates ended
    // "not found" while their answers were on their way (seed 24), or with a stale copy
    // from a nearer node that had answered (seed 392).
    let (a, b) = (contact(1), contact(2));
    let target = contact(3).id;
    let mut lookup = Lookup::new(target, params(2, 2), [a, b]);
    lookup.wait_for_slow_requests();
    let asked = all_asked_and_slow(&mut lookup);
    assert_eq!(lookup.next(), Next::Wait, "no answer yet, and two may come");
    assert!(lookup.on_success(&asked[0], []), "a late answer is taken");
    assert_eq!(
        lookup.next(),
        Next::Wait,
        "the other slow one may yet answer"
    );
    assert!(!lookup.on_timeout(&asked[1]), "it held no slot any more");
    assert_eq!(lookup.next(), Next::Finished, "each answered or failed");

    // Without the wait, as a `find_node`: the slow requests are given up.
    let mut lookup = Lookup::new(target, params(2, 2), [a, b]);
    all_asked_and_slow(&mut lookup);
    assert_eq!(lookup.next(), Next::Finished);
}

/// Sends every request `lookup` asks for, then passes each one's round-trip timeout.
fn all_asked_and_slow(lookup: &mut Lookup) -> Vec<NodeId> {
    let mut asked = Vec::new();
    while let Next::Send(Peer { id: Some(id), .. }) = lookup.next() {
        asked.push(id);
    }
    for id in &asked {
        assert!(lookup.on_slow(id));
    }
    asked
}

#[test]
fn a_lookup_that_waits_for_slow_requests_still_frees_their_slots() {
    // One slot: the closest is slow, so the next is asked at once, and the lookup ends only
    // once the slow one is heard from.
    let (a, b) = (contact(1), contact(2));
    let target = contact(3).id;
    let mut lookup = Lookup::new(target, params(2, 1), [a, b]);
    lookup.wait_for_slow_requests();
    let Next::Send(Peer {
        id: Some(first), ..
    }) = lookup.next()
    else {
        panic!("asks one");
    };
    assert_eq!(lookup.next(), Next::Wait, "one slot");
    assert!(lookup.on_slow(&first));
    let Next::Send(Peer {
        id: Some(second), ..
    }) = lookup.next()
    else {
        panic!("the slot was freed");
    };
    assert_ne!(first, second);
    assert!(lookup.on_success(&second, []));
    assert_eq!(lookup.next(), Next::Wait, "the closest may yet answer");
    assert!(lookup.on_success(&first, []));
    assert_eq!(lookup.next(), Next::Finished);
}

#[test]
fn the_closest_count_candidates_not_yet_asked_and_skip_those_that_failed() {
    let target = Id::from_bytes([0; 64]);
    let mut all: Vec<Contact> = (1..=30).map(contact).collect();
    all.sort_by_key(|c| c.id.distance(&target));
    let mut lookup = Lookup::new(target, params(3, 3), all[10..16].to_vec());
    let asked: Vec<NodeId> = (0..3)
        .map(|_| match lookup.next() {
            Next::Send(peer) => peer.id.expect("a lookup asks by id"),
            other => panic!("expected a request, got {other:?}"),
        })
        .collect();
    assert_eq!(asked, [all[10].id, all[11].id, all[12].id]);
    // The first to answer names three closer nodes, not asked yet: they are the 3 closest
    // now, and the nodes that answered are not among them.
    assert!(lookup.on_success(&all[10].id, all[..3].to_vec()));
    assert!(lookup.on_success(&all[11].id, Vec::new()));
    assert_eq!(lookup.closest_succeeded(3), vec![all[10], all[11]]);
    assert_eq!(lookup.succeeded_among_closest(3), Vec::new());
    assert!(lookup.is_among_closest(&all[2].id, 3));
    assert!(!lookup.is_among_closest(&all[10].id, 3));
    // One of them fails: the closest that answered moves up among the 3.
    assert!(matches!(lookup.next(), Next::Send(p) if p.id == Some(all[0].id)));
    assert!(lookup.on_failure(&all[0].id));
    assert!(lookup.is_among_closest(&all[10].id, 3));
    assert!(!lookup.is_among_closest(&all[11].id, 3));
    assert_eq!(lookup.succeeded_among_closest(3), vec![all[10]]);
}
