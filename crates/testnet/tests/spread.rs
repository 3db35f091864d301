//! A test network spread over processes never waits on a worker that is gone: one that dies
//! before its nodes start stops the run with a clear error, and one that dies during the run
//! fails the operations sent to it while the rest of the network carries on.

use cairn_testnet::{self as testnet, Plan, Silent, TestnetError, WorkerCommand};

fn shell(script: &str) -> WorkerCommand {
    WorkerCommand {
        program: "/bin/sh".into(),
        // `sh -c SCRIPT NAME ARGS...`: the `--first F --count C` the driver adds are ignored.
        args: vec!["-c".into(), script.into(), "worker".into()],
    }
}

fn plan(worker: WorkerCommand) -> Plan {
    Plan {
        nodes: 6,
        items: 6,
        seed: 3,
        concurrency: 4,
        processes: Some(2),
        worker: Some(worker),
        serve: None,
        datagrams: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_exits_before_starting_stops_the_run_with_its_reason() {
    let result = testnet::run(&plan(shell("exit 3")), &Silent).await;
    match result {
        Err(TestnetError::Worker(why)) => {
            assert!(why.contains("worker 1"), "{why}");
            assert!(why.contains("exited before its nodes started"), "{why}");
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("the run went on without its worker"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_fails_its_operations_and_the_run_finishes() {
    // It announces three nodes (at an address where nothing listens) and exits at once.
    let script = r#"echo '{"Listening":["127.0.0.9:9","127.0.0.9:9","127.0.0.9:9"]}'"#;
    let (mut net, report) = testnet::run(&plan(shell(script)), &Silent)
        .await
        .expect("the run finishes");
    assert_eq!(report.processes, 2);
    assert_eq!(report.report.nodes, 6);
    // The worker's three nodes could not join; this process's three could.
    assert_eq!(report.report.failed_joins, 3);
    let puts = &report.report.puts;
    assert_eq!(puts.attempted, 6);
    assert!(puts.succeeded < 6, "puts from the dead worker's nodes fail");
    net.shutdown().await;
}
