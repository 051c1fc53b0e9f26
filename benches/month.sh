#!/usr/bin/env bash
# The seed's scale: a month of a 100-agent team (traces/seed-month.gen.toml, 7.5 M rows) under
# the six seed-story strategies, open and closed loop. Prints wall seconds, CPU seconds and
# max RSS per run and their medians over RUNS runs (the machine is shared: trust CPU-s).
#
#   benches/month.sh                  # RUNS=3 MODES="open closed"
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
MODES=${MODES:-open closed}
mkdir -p target/bench
cargo build --release --quiet
if [ ! -s target/seed-month.csv ]; then
  target/release/sim trace gen --config traces/seed-month.gen.toml -o target/seed-month.csv
fi
for mode in $MODES; do
  # The seed-story scenario with the month's trace and the replay mode under test.
  sed -e 's|^file = .*|file = "../seed-month.csv"|' -e "s|^replay = .*|replay = \"$mode\"|" \
    scenarios/seed-story.toml > "target/bench/month-$mode.toml"
  rows=()
  for run in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %U %S %M" -o "target/bench/month-$mode.time" \
      target/release/sim run "target/bench/month-$mode.toml" --quiet > "target/bench/month-$mode.txt"
    read -r wall user sys rss < "target/bench/month-$mode.time"
    cpu=$(python3 -c "print(round($user + $sys, 1))")
    echo "month $mode run $run: ${wall} s wall, ${cpu} CPU-s, max RSS $((rss / 1024)) MB"
    rows+=("$wall $cpu $rss")
  done
  python3 - "$mode" "${rows[@]}" <<'PY'
import statistics, sys
mode, runs = sys.argv[1], [list(map(float, r.split())) for r in sys.argv[2:]]
med = [statistics.median(col) for col in zip(*runs)]
print(f"month x 6 strategies, {mode} loop, median of {len(runs)}: {med[0]:.1f} s wall, "
      f"{med[1]:.1f} CPU-s, max RSS {med[2] / 1024:.0f} MB")
PY
done
