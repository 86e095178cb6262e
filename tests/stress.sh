#!/usr/bin/env bash
# Run the whole test suite N times while K CPU-burning processes compete for the cores.
#
#   tests/stress.sh [N=5] [K=2] [pytest args...]
#
# A suite that only passes on an idle machine is not done: on a 2-core box, K=2 leaves the tests
# one core's worth of time at best. Prints one line per run (pass/fail, wall time) and a summary;
# exits non-zero if any run failed. Each run's full output is kept under $STRESS_LOGS (default: a
# temporary folder).
set -u
N=${1:-5}
K=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
cd "$(dirname "$0")/.."
LOGS=${STRESS_LOGS:-$(mktemp -d -t gptmini-stress-XXXXXX)}
mkdir -p "$LOGS"

burners=()
for _ in $(seq 1 "$K"); do
  python3 -c 'while True: pass' &
  burners+=($!)
done
trap 'kill "${burners[@]}" 2>/dev/null' EXIT

echo "stress: $N run(s) of the suite with $K CPU burner(s) on $(nproc) core(s); logs in $LOGS"
failed=0
for i in $(seq 1 "$N"); do
  t0=$(date +%s)
  python -m pytest -q -p no:cacheprovider "$@" > "$LOGS/run-$i.log" 2>&1
  rc=$?
  t1=$(date +%s)
  summary=$(tail -n 1 "$LOGS/run-$i.log")
  if [ "$rc" -eq 0 ]; then status=PASS; else status=FAIL; failed=$((failed + 1)); fi
  echo "run $i/$N: $status in $((t1 - t0)) s -- $summary"
  if [ "$rc" -ne 0 ]; then grep -E '^(FAILED|ERROR) ' "$LOGS/run-$i.log" | sed 's/^/    /'; fi
done
echo "stress: $((N - failed)) of $N run(s) green with $K burner(s)"
[ "$failed" -eq 0 ]
