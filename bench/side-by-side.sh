#!/bin/sh
# Side by side, on one machine in one session: cairn over datagrams, cairn over TCP (version-1
# nodes of the same binary) and OpenDHT, one operation at a time, the same workload, in turn.
#
#   bench/side-by-side.sh NODES [ROUNDS] [OUT_DIR]
#
# Needs target/release/cairn (`cargo build --release`) and OpenDHT's Python bindings in
# $OPENDHT_PYTHON (default /tmp/opendht-venv/bin/python; see bench/README.md). Writes one JSON
# report per run to OUT_DIR (default bench-out/) and prints a line per run.
set -eu
nodes=${1:?usage: bench/side-by-side.sh NODES [ROUNDS] [OUT_DIR]}
rounds=${2:-2}
out=${3:-bench-out}
python=${OPENDHT_PYTHON:-/tmp/opendht-venv/bin/python}
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  for transport in datagrams tcp; do
    target/release/cairn testnet --nodes "$nodes" --concurrency 1 --items 100 \
      --transport "$transport" --json 2>/dev/null > "$out/cairn-$transport-$nodes-$round.json"
  done
  "$python" bench/opendht.py --nodes "$nodes" --items 100 --json 2>/dev/null \
    > "$out/opendht-$nodes-$round.json"
done
"$python" - "$out" "$nodes" <<'PY'
import glob, json, os, sys
out, nodes = sys.argv[1], sys.argv[2]
for path in sorted(glob.glob(os.path.join(out, f"*-{nodes}-*.json"))):
    r = json.load(open(path))
    print(f"{os.path.basename(path):32} setup {r['setup_s']:6.2f} s ({r['joins_per_s']:4.0f}/s)"
          f"  put p50 {r['puts']['latency_ms']['p50']:6.1f} ms"
          f"  get p50/p95 {r['gets']['latency_ms']['p50']:5.2f}/{r['gets']['latency_ms']['p95']:5.2f} ms"
          f"  gets ok {r['gets']['success_percent']:5.1f}%"
          f"  memory {r['memory_per_node_bytes'] // 1024} KiB/node")
PY
