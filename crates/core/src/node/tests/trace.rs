//! The step-by-step records of a traced node: a lookup from start to end along the hops it
//! took, every request's end, and housekeeping.

use std::num::NonZeroUsize;

use super::*;

fn traces(net: &mut Net, at: u8) -> Vec<Trace> {
    std::iter::from_fn(|| net.node(at).poll_trace()).collect()
}

/// 30 nodes with k = 3, so that no table holds everyone and lookups take several hops.
fn small_k_net() -> Net {
    let config = Config {
        k: NonZeroUsize::new(3).expect("non-zero"),
        alpha: NonZeroUsize::new(1).expect("non-zero"),
        disjoint_paths: NonZeroUsize::new(1).expect("non-zero"),
        ..Config::default()
    };
    let mut net = Net::with_config(30, config);
    net.join_all();
    net
}

#[test]
fn a_traced_get_is_recorded_from_start_to_end_along_the_hops_it_took() {
    let mut net = small_k_net();
    let item = signed(7, "traced", b"v", 1);
    let key = *item.key();
    net.put(7, item).expect("stored");
    // Node 1 starts tracing only now: what came before is not recorded.
    net.node(1).set_tracing(true);
    let now = net.now;
    let query = net.node(1).get(now, key);
    net.run_timers();
    let Some(Event::GetDone { stats, result, .. }) = net.done(1, query).cloned() else {
        panic!("the get finished");
    };
    assert!(result.is_ok());
    let records = traces(&mut net, 1);
    let ours: Vec<&Trace> = records
        .iter()
        .filter(|t| match t {
            Trace::QueryStarted { query: q, .. }
            | Trace::Asked { query: q, .. }
            | Trace::Replied { query: q, .. }
            | Trace::QueryFinished { query: q, .. } => *q == query,
            _ => false,
        })
        .collect();
    assert_eq!(
        ours.first(),
        Some(&&Trace::QueryStarted {
            query,
            operation: Operation::Get,
            target: key
        })
    );
    assert_eq!(
        ours.last(),
        Some(&&Trace::QueryFinished {
            query,
            operation: Operation::Get,
            outcome: QueryOutcome::Ok,
            stats
        })
    );
    // Each hop past the first comes from a node that answered this get before it was asked.
    let mut answered = Vec::new();
    let mut asked = 0;
    let mut deepest = 0;
    for record in &ours {
        match record {
            Trace::Replied {
                from: Some(from),
                ok: true,
                ..
            } => answered.push(*from),
            Trace::Asked { via, hop, .. } => {
                asked += 1;
                deepest = deepest.max(*hop);
                match via {
                    None => assert_eq!(*hop, 1, "only the first hop comes from the table"),
                    Some(via) => assert!(answered.contains(via), "{via} told of it first"),
                }
            }
            _ => {}
        }
    }
    assert!(deepest > 1, "with k = 3 among 30 nodes the get hops");
    assert!(stats.hops >= 1 && stats.hops <= deepest);
    let ended = records
        .iter()
        .filter(|t| {
            matches!(
                t,
                Trace::RequestEnded {
                    request: "find_value",
                    ..
                }
            )
        })
        .count();
    assert_eq!(ended, asked, "every request asked ends once");
    // Tracing is off unless asked for.
    assert!(traces(&mut net, 2).is_empty());
}

#[test]
fn requests_that_time_out_or_are_refused_are_recorded_so() {
    let mut net = Net::new(4);
    net.join_all();
    for n in 1..=4 {
        net.node(n).set_tracing(true);
    }
    net.down.push(addr(4));
    assert!(net.get(1, Id::hash(b"missing")).is_err());
    let records = traces(&mut net, 1);
    assert!(records.iter().any(|t| matches!(
        t,
        Trace::RequestEnded {
            outcome: RequestOutcome::TimedOut,
            round_trip: None,
            ..
        }
    )));
    assert!(records.iter().any(|t| matches!(
        t,
        Trace::QueryFinished {
            outcome: QueryOutcome::NotFound,
            ..
        }
    )));
    // A stale store is refused with 409, and the sender records the refusal.
    net.down.clear();
    net.put(2, signed(2, "n", b"new", 2)).expect("stored");
    let now = net.now;
    let stale = Request::Store {
        item: signed(2, "n", b"old", 1),
    };
    net.node(3)
        .requests
        .send(now, contact(1).into(), stale, Purpose::Unattended);
    net.settle();
    let records = traces(&mut net, 3);
    assert!(records.contains(&Trace::RequestEnded {
        request: "store",
        outcome: RequestOutcome::Refused(ErrorCode::CONFLICT),
        round_trip: Some(Duration::ZERO),
    }));
}

#[test]
fn housekeeping_duties_and_their_lookups_are_recorded() {
    let mut net = Net::new(5);
    net.join_all();
    net.put(1, signed(1, "kept", b"v", 1)).expect("stored");
    net.node(2).set_tracing(true);
    let later = net.now + Config::default().replicate_interval * 2;
    net.now = later;
    net.node(2).handle_timeout(later);
    let records = traces(&mut net, 2);
    let duty = |d: Duty| {
        records
            .iter()
            .any(|t| matches!(t, Trace::Housekeeping { duty, .. } if *duty == d))
    };
    assert!(duty(Duty::Expire) && duty(Duty::Replicate) && duty(Duty::Refresh));
    assert!(records.iter().any(|t| matches!(
        t,
        Trace::QueryStarted {
            operation: Operation::Replicate,
            ..
        }
    )));
}
