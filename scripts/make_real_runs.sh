#!/usr/bin/env bash
# Regenerate tests/data/real-runs: real runs of three shipped scenarios on the reference lab,
# used by the notebook and report tests. Needs root and `make setup`; takes about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/data/real-runs
work=$(mktemp -d)
for scenario in node-crash-bfd site-isolation node-crash-holdtimer; do
    .venv/bin/anylab run "scenarios/$scenario.yaml" --runs "$work" --keep-lab
done
.venv/bin/anylab down --name three-sites || true
.venv/bin/anylab down --name "$(.venv/bin/python -c 'from pathlib import Path; from lab.scenario.load import load_scenario; print(load_scenario(Path("scenarios/node-crash-holdtimer.yaml")).lab_name)')" || true
rm -rf "$out" && mkdir -p "$out"
cp -r "$work"/*/ "$out"/
chmod -R go+rX "$out"
rm -rf "$work"
ls "$out"
