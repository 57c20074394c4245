#!/bin/sh
# The lab as a gate: play the scenarios with budgets, write JUnit files and one HTML report,
# and fail when a budget failed (exit 3) or a run did not complete (exit 1). Run as root from
# the repository, after `sudo make setup` (the workflow beside this file does both).
set -u
out=${1:-gate-results}
lab=anycast-gate  # both scenarios use the reference lab: it is brought up once
mkdir -p "$out"
status=0
for scenario in examples/ci/node-crash-budget.yaml examples/ci/site-drain-budget.yaml; do
    name=$(basename "$scenario" .yaml)
    .venv/bin/anylab run "$scenario" --quiet --runs "$out/runs" --name "$lab" --keep-lab \
        --junit "$out/$name.junit.xml" --json > "$out/$name.summary.json"
    code=$?
    echo "$name: exit $code"
    if [ "$code" -ne 0 ] && [ "$status" -ne 1 ]; then status=$code; fi
done
.venv/bin/anylab report "$out"/runs/*/ -o "$out/report.html" --title "anycast gate"
.venv/bin/anylab down --name "$lab" > /dev/null
exit "$status"
