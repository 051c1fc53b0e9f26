#!/usr/bin/env bash
# routesim vs the SimPy model a user would write instead (benches/peers/simpy_fallback.py):
# a 2-deployment fallback chain behind RPM/ITPM buckets, on the same trace. Checks that the
# 429 counts are identical and prints the speed ratio (CPU seconds, trace parsing included on
# both sides), as medians of RUNS alternated runs.
#
#   benches/peers.sh              # ROWS=1000000 RATE=150 RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
RATE=${RATE:-150}
RUNS=${RUNS:-3}
SIMPY_VERSION=4.1.1
mkdir -p target/bench
if [ ! -x target/peer-venv/bin/python ] || ! target/peer-venv/bin/python -c "import simpy, sys; sys.exit(simpy.__version__ != '$SIMPY_VERSION')"; then
  python3 -m venv target/peer-venv
  target/peer-venv/bin/pip install -q "simpy==$SIMPY_VERSION"
fi
cargo build --release --quiet
python3 benches/peers/gen_trace.py "$ROWS" "$RATE" target/bench/peer-trace.csv

routesim_s=(); simpy_s=()
for run in $(seq "$RUNS"); do
  /usr/bin/time -f "%U %S %M" -o target/bench/peer-time.txt \
    target/release/sim run benches/peers/fallback.toml --json --quiet > target/bench/peer-routesim.json
  read -r user sys rss < target/bench/peer-time.txt
  routesim_s+=("$(python3 -c "print($user + $sys)")")
  target/peer-venv/bin/python benches/peers/simpy_fallback.py target/bench/peer-trace.csv > target/bench/peer-simpy.json
  simpy_s+=("$(python3 -c "import json; print(json.load(open('target/bench/peer-simpy.json'))['cpu_s'])")")
done

python3 - "${routesim_s[*]}" "${simpy_s[*]}" "$rss" <<'PY'
import json, statistics, sys
routesim_s = [float(x) for x in sys.argv[1].split()]
simpy_s = [float(x) for x in sys.argv[2].split()]
rs = json.load(open("target/bench/peer-routesim.json"))["strategies"][0]
sp = json.load(open("target/bench/peer-simpy.json"))
ours = {
    "requests": rs["requests"],
    "rate_limited": rs["rate_limited"],
    "attempts": rs["attempts"],
    "primary_429s": rs["by_deployment"]["primary"]["attempts_429"],
    "secondary_429s": rs["by_deployment"]["secondary"]["attempts_429"],
}
theirs = {k: sp[k] for k in ours}
print(f"routesim: {ours}")
print(f"simpy:    {theirs}")
if ours != theirs:
    print("MISMATCH: the 429 counts differ")
    sys.exit(1)
r, s = statistics.median(routesim_s), statistics.median(simpy_s)
n = ours["requests"]
print(f"429 counts identical. CPU-s median of {len(routesim_s)}: routesim {r:.2f} s ({n / r / 1e6:.2f} M requests/s, "
      f"max RSS {int(sys.argv[3]) / 1024:.0f} MB), SimPy {s:.2f} s ({n / s / 1e6:.3f} M requests/s): routesim {s / r:.1f}x faster")
PY
