#!/usr/bin/env python3
"""OpenDHT on cairn's testnet workload: the other side of the side-by-side comparison.

Runs N OpenDHT nodes (``DhtRunner``s of the ``opendht`` Python bindings) in this process on
loopback, joins them, then puts items from random nodes and gets each from another random
node, one operation at a time, and reports what ``cairn testnet --concurrency 1`` reports:
setup time and joins/s, put and get latency (p50/p95/p99), the share of puts acknowledged and
of gets that found the item, and memory per node. ``bench/README.md`` says how each step
matches cairn's (``crates/testnet/src/workload.rs``, ``member.rs``, ``local.rs``).

Choices made here, and why:

- Every node binds 127.0.0.1 with a port of its own. cairn gives each node an address of its
  own (127.a.b.1), but OpenDHT rewrites every loopback address it reads in a ``nodes`` answer
  to the answering peer's address (``NetworkEngine::deserializeNodes``), so on distinct 127.x
  addresses the nodes would learn wrong addresses for each other.
- Because every peer then has the same IP, OpenDHT's per-IP rate limit (1,024 requests/s by
  default: the global 8,192 / 8) sees the whole network as one host. It is turned off
  (``DhtConfig.setRateLimit(0, -1)``: the global limit stays at its default), as cairn's
  per-host limits see many hosts; ``--peer-rate-limit`` keeps OpenDHT's default.
- A join is what cairn's ``bootstrap`` is: ask up to three random earlier nodes (a ping each,
  all answered or timed out), then a lookup of the node's own id (a ``get`` of it, waited
  for). It fails when no seed answered. ``--join ping`` does the pings only, as a node that
  calls OpenDHT's ``bootstrap`` and goes on: its routing table then fills in the background.
- Settle: none by default (``--settle 0``), since with the join above every get found its
  item at N = 500 and N = 2,000 without one. After ``--join ping`` a settle is needed: at
  N = 2,000, 82 of 100 gets found their item right after the last join and 100 after a
  ``--settle 3`` (the 3 s let the nodes' own maintenance fill their routing tables).
  ``--settle S`` waits S seconds after the last join; the setup time does not include it.
- Puts are plain ``put``s of unsigned values under a key of their own. cairn alternates
  signed and immutable items; signing in OpenDHT needs an identity per node (RSA), which
  this harness does not give them.
- A get ends at the first copy of the value put (its callback then returns False, which
  ends OpenDHT's get), as cairn's get of an immutable item ends at its first copy; its
  latency runs to OpenDHT's done callback.

Needs ``pip install opendht`` (4.4.2 has a wheel for CPython 3.11 on x86_64 Linux).
Usage: ``python3 bench/opendht.py --nodes 500 --items 100 [--seed 1] [--settle 0] [--json]``.
"""

import argparse
import json
import os
import random
import sys
import threading
import time

# This file is named opendht.py too: take its folder off the path, or it would import itself.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

try:
    import opendht
except ImportError:
    sys.exit("opendht is not installed: pip install opendht (in a venv if the system pip refuses)")

AF_INET = 2
# How long to wait for one callback before counting the operation as failed, in seconds
# (cairn's lookup_timeout is 30 s).
OPERATION_TIMEOUT = 30.0
# Seeds per join, as cairn's testnet.
SEEDS_PER_JOIN = 3


def resident_bytes():
    """Resident memory of this process, from /proc/self/statm (0 if unknown)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def quantile(sorted_samples, q):
    """The nearest-rank quantile cairn_report::quantile uses (0 for no samples)."""
    if not sorted_samples:
        return 0.0
    at = round((len(sorted_samples) - 1) * min(max(q, 0.0), 1.0))
    return sorted_samples[min(at, len(sorted_samples) - 1)]


def operations(samples):
    """What cairn_report::Operations sums up: latency over the successful ones, in ms."""
    ok = sorted(ms for success, ms in samples if success)
    attempted = len(samples)
    return {
        "attempted": attempted,
        "succeeded": len(ok),
        "success_percent": 100.0 * len(ok) / attempted if attempted else 100.0,
        "latency_ms": {q: quantile(ok, v) for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
    }


class Pending:
    """Waits for `count` callbacks of one operation; `succeeded` if any said it succeeded."""

    def __init__(self, count=1):
        self.left = count
        self.succeeded = False
        self.done = threading.Condition()

    def callback(self, ok, _nodes=None):
        """A completion callback of OpenDHT (runs on that node's thread); a put's or a get's
        also lists the nodes of its search, which this does not need."""
        with self.done:
            self.left -= 1
            self.succeeded |= bool(ok)
            self.done.notify()

    def wait(self):
        """Whether the operation succeeded before OPERATION_TIMEOUT."""
        with self.done:
            finished = self.done.wait_for(lambda: self.left <= 0, OPERATION_TIMEOUT)
        return finished and self.succeeded


def start_nodes(count, peer_rate_limit):
    """Starts `count` nodes on 127.0.0.1, each on a port of its own, not yet joined."""
    nodes, addrs = [], []
    for _ in range(count):
        config = opendht.DhtConfig()
        if not peer_rate_limit:
            config.setRateLimit(0, -1)
        node = opendht.DhtRunner()
        node.run(ipv4="127.0.0.1", port=0, config=config)
        nodes.append(node)
        addrs.append(node.getBound(AF_INET))
    return nodes, addrs


def join(node, seeds, lookup):
    """Pings `seeds`, then (if `lookup`) looks up the node's own id. Whether a seed answered."""
    pinged = Pending(len(seeds))
    for seed in seeds:
        node.ping(seed, pinged.callback)
    answered = pinged.wait()
    if not lookup:
        return answered
    looked_up = Pending()
    node.get(node.getNodeId(), lambda value: True, looked_up.callback)
    looked_up.wait()
    return answered


def join_all(nodes, addrs, lookup, rng, progress):
    """Joins every node but the first through up to three random earlier nodes, one at a
    time. Returns how many failed."""
    failed = 0
    for i in range(1, len(nodes)):
        seeds = [addrs[rng.randrange(i)] for _ in range(min(SEEDS_PER_JOIN, i))]
        failed += not join(nodes[i], seeds, lookup)
        progress("joining", i, len(nodes) - 1)
    return failed


def put(node, key, value):
    """Puts `value` at `key`. Returns (acknowledged, ms)."""
    pending = Pending()
    started = time.perf_counter()
    node.put(key, opendht.Value(value), pending.callback)
    ok = pending.wait()
    ms = (time.perf_counter() - started) * 1000.0
    return ok, ms


def get(node, key, expect):
    """Gets `key`, ending at the first copy of `expect`. Returns (found it, ms)."""
    pending = Pending()
    found = threading.Event()

    def on_value(value):
        if value.data == expect:
            found.set()
            return False  # ends the get, as cairn's ends at the first immutable copy
        return True

    started = time.perf_counter()
    node.get(key, on_value, pending.callback)
    pending.wait()
    ms = (time.perf_counter() - started) * 1000.0
    return found.is_set(), ms


def reader(publisher, count, rng):
    """Any node but the publisher, uniformly (cairn_report::reader)."""
    if count < 2:
        return publisher
    pick = rng.randrange(count - 1)
    return pick if pick < publisher else pick + 1


def messages_sent(nodes):
    """Requests the nodes sent since the last call (OpenDHT resets its counters on read)."""
    return sum(sum(node.getNodeMessageStats()) for node in nodes)


def put_all(nodes, items, rng, progress):
    """Puts `items` values of 16 to 1,023 random bytes from random nodes, one at a time.
    Returns the items acknowledged (key, value, publisher) and the samples."""
    puts, samples = [], []
    for i in range(items):
        publisher = rng.randrange(len(nodes))
        value = rng.randbytes(rng.randrange(16, 1024))
        key = opendht.InfoHash.getRandom()
        ok, ms = put(nodes[publisher], key, value)
        samples.append((ok, ms))
        if ok:
            puts.append((key, value, publisher))
        progress("putting", i + 1, items)
    return puts, samples


def get_all(nodes, puts, rng, progress):
    """Gets every item acknowledged from a node other than its publisher, one at a time."""
    samples = []
    for i, (key, value, publisher) in enumerate(puts):
        samples.append(get(nodes[reader(publisher, len(nodes), rng)], key, value))
        progress("getting", i + 1, len(puts))
    return samples


def workload(nodes, items, rng, progress):
    """The puts, then the gets: their summaries, rates, and the requests the nodes sent."""
    messages_sent(nodes)
    put_stage = time.perf_counter()
    puts, put_samples = put_all(nodes, items, rng, progress)
    get_stage = time.perf_counter()
    get_samples = get_all(nodes, puts, rng, progress)
    ended = time.perf_counter()
    return {
        "puts": operations(put_samples),
        "gets": operations(get_samples),
        "puts_per_s": len(put_samples) / max(get_stage - put_stage, 1e-9),
        "gets_per_s": len(get_samples) / max(ended - get_stage, 1e-9),
        "messages": messages_sent(nodes),
    }


def run(args, progress):
    """Starts the network, runs the workload, and returns the report and the nodes."""
    rng = random.Random(args.seed)
    started = time.perf_counter()
    rss_before = resident_bytes()
    nodes, addrs = start_nodes(args.nodes, args.peer_rate_limit)
    failed_joins = join_all(nodes, addrs, args.join == "lookup", rng, progress)
    setup_s = time.perf_counter() - started
    time.sleep(args.settle)
    measured = workload(nodes, args.items, rng, progress)
    rss_after = resident_bytes()
    report = {
        "system": f"opendht {opendht.version()}",
        "nodes": args.nodes,
        "seed": args.seed,
        "setup_s": setup_s,
        "joins_per_s": (args.nodes - 1) / max(setup_s, 1e-9),
        "failed_joins": failed_joins,
        "join": args.join,
        "settle_s": args.settle,
        **measured,
        "memory_per_node_bytes": max(rss_after - rss_before, 0) // args.nodes,
        "concurrency": 1,
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "threads": len(os.listdir("/proc/self/task")),
        "peer_rate_limit": args.peer_rate_limit,
        "wall_s": time.perf_counter() - started,
    }
    return report, nodes


def show(report):
    """The report as a small table, in the order cairn testnet prints its own."""
    def line(ops):
        l = ops["latency_ms"]
        return (f"{ops['succeeded']}/{ops['attempted']} ok ({ops['success_percent']:.2f}%), "
                f"latency p50 {l['p50']:.1f} ms p95 {l['p95']:.1f} ms p99 {l['p99']:.1f} ms")

    r = report
    print(f"{r['system']}, {r['nodes']} nodes on 127.0.0.1 (UDP), one operation at a time")
    print(f"  nodes            {r['nodes']} (seed {r['seed']})")
    print(f"  setup            {r['setup_s']:.2f} s ({r['joins_per_s']:.0f} joins/s, "
          f"{r['failed_joins']} failed, join by {r['join']}), then {r['settle_s']:g} s settle")
    print(f"  puts             {line(r['puts'])}")
    print(f"  gets             {line(r['gets'])}")
    print(f"  memory           {r['memory_per_node_bytes'] / 1024:.1f} KiB per node "
          f"({r['rss_before_bytes'] / 2**20:.0f} -> {r['rss_after_bytes'] / 2**20:.0f} MiB)")
    print(f"  throughput       {r['puts_per_s']:.0f} puts/s, {r['gets_per_s']:.0f} gets/s, "
          f"{r['messages']} requests sent")
    print(f"  wall             {r['wall_s']:.1f} s")


def shutdown(nodes):
    """Stops every node, all at once, and waits (bounded) for them."""
    stopped = Pending(len(nodes))
    for node in nodes:
        node.shutdown(lambda: stopped.callback(True))
    stopped.wait()
    for node in nodes:
        node.join()


def progress_on_stderr(quiet):
    """A progress callback that prints a line to stderr every tenth of a stage."""
    def progress(stage, done, total):
        if not quiet and (done == total or done % max(total // 10, 1) == 0):
            print(f"{stage}: {done}/{total}", file=sys.stderr, flush=True)
    return progress


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500, help="nodes to start (default 500)")
    parser.add_argument("--items", type=int, default=100, help="items to put and get (default 100)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the random choices (default 1)")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds to wait after the last join before the puts (default 0)")
    parser.add_argument("--join", choices=("lookup", "ping"), default="lookup",
                        help="lookup: ping the seeds, then look up the node's own id, as cairn's "
                        "bootstrap (default); ping: the pings only")
    parser.add_argument("--peer-rate-limit", action="store_true",
                        help="keep OpenDHT's per-IP rate limit (every node shares 127.0.0.1)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args()
    if args.nodes < 2:
        parser.error("--nodes must be at least 2 (a get is made from another node)")
    report, nodes = run(args, progress_on_stderr(args.json))
    if args.json:
        print(json.dumps(report))
    else:
        show(report)
    sys.stdout.flush()
    shutdown(nodes)


if __name__ == "__main__":
    main()
