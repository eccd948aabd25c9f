#!/usr/bin/env bash
# Regenerate ALL demo checkpoints shipped in invkit/assets/demo/ (used by the no-argument `invkit bench`),
# with invkit's own commands only:
#   classifier_standard, classifier_robust  `invkit train-classifier` (smallcnn on MNIST; standard and PGD-robust),
#                                           via benchmarks/demo/train_demo_classifiers.sh (its exact commands)
#   biggan_standard, biggan_robust          `invkit train --inverter biggan_proj.mnist32` against each classifier
#   dbrox_standard, dbrox_robust            `invkit train --inverter dosovitskiy_brox.mnist` against each classifier
# then copies config.json + model.safetensors of each final checkpoint into the assets (a few MB in all),
# runs `invkit bench` on the result as a check and renders its report.html into docs/report-screenshot.png.
#
# CPU only, one thread per job, jobs in parallel where they are independent. Full MNIST (60k train digits) from
# $MNIST; steps are the ones the demo checkpoints were made with (see benchmarks/results/*mnist* for the runs).
#
# usage: benchmarks/demo/make_demo.sh [all|classifiers|inverters|dbrox|copy|check]
#        (dbrox: only the two dosovitskiy_brox runs of `inverters`)
# env:   MNIST        ImageFolder MNIST with train/ and test/ (default ~/.cache/invkit-data/mnist)
#        RUNS         where the full run folders go (default ~/.cache/invkit/demo_runs)
#        BIGGAN_STEPS, DBROX_STEPS   generator steps of the inverter runs (defaults below)
set -euo pipefail
cd "$(dirname "$0")/../.."
MNIST=${MNIST:-$HOME/.cache/invkit-data/mnist}
RUNS=${RUNS:-$HOME/.cache/invkit/demo_runs}
INVKIT=${INVKIT:-invkit}
BIGGAN_STEPS=${BIGGAN_STEPS:-3500}
DBROX_STEPS=${DBROX_STEPS:-3000}
ASSETS=invkit/assets/demo
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

classifiers() {
  MNIST="$MNIST" RUNS="$RUNS" INVKIT="$INVKIT" bash benchmarks/demo/train_demo_classifiers.sh all
}

# train_inverter NAME INVERTER CLASSIFIER_LABEL STEPS BATCH_SIZE
train_inverter() {
  local name=$1 inverter=$2 label=$3 steps=$4 batch=$5
  nice -n 10 "$INVKIT" train --classifier "$ASSETS/classifier_$label" --inverter "$inverter" --data "$MNIST" \
    --out "$RUNS/$name" --steps "$steps" --batch-size "$batch" --seed 0 --device cpu \
    --save-every 500 --sample-every 500 --log-every 100 --keep-checkpoints 0
}

# waits for every background job given by pid; the script stops (set -e) when one failed (a bare `wait` returns 0)
wait_all() {
  local pid
  for pid in "$@"; do wait "$pid"; done
}

dbrox() {
  # dosovitskiy_brox: 3000 steps at batch 64 (see docs/baselines.md). Since issue 12 (published decoder, spatial
  # comparator) both runs together took 58 minutes on the shared 2-core machine (2026-11-30, load 10-20).
  train_inverter dbrox_standard dosovitskiy_brox.mnist standard "$DBROX_STEPS" 64 &
  local standard=$!
  train_inverter dbrox_robust dosovitskiy_brox.mnist robust "$DBROX_STEPS" 64 &
  wait_all "$standard" $!
}

inverters() {
  dbrox
  # biggan_proj: batch 16, 3500 G steps (the shipped checkpoints: 2000 steps, then --resume to 3500; a resumed
  # run is bit-identical to an uninterrupted one, see tests/test_train_loop.py). Checkpoints written since issue 12
  # carry standing BN statistics; the shipped ones got theirs afterwards with `invkit standing-stats` (16 x 64
  # train digits, seed 0; see benchmarks/results/biggan_proj-standing-stats-cpu-torch2.14.1.md).
  train_inverter biggan_standard biggan_proj.mnist32 standard "$BIGGAN_STEPS" 16 &
  local standard=$!
  train_inverter biggan_robust biggan_proj.mnist32 robust "$BIGGAN_STEPS" 16 &
  wait_all "$standard" $!
}

copy() {
  for name in biggan_standard biggan_robust dbrox_standard dbrox_robust; do
    # the newest complete checkpoint of the run (step_NNNNNN folders sort by step)
    local ckpt
    ckpt=$(ls -d "$RUNS/$name"/checkpoints/step_* | sort | tail -n 1)
    mkdir -p "$ASSETS/$name"
    cp "$ckpt/config.json" "$ckpt/model.safetensors" "$ASSETS/$name/"
  done
  du -sh "$ASSETS"
}

check() {
  rm -rf "$RUNS/bench-check"
  time "$INVKIT" bench --out "$RUNS/bench-check"
  # the screenshot in docs/bench.md (Debian's chromium package)
  if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
      --disable-sync --no-first-run --user-data-dir="$(mktemp -d)" --screenshot=docs/report-screenshot.png \
      --window-size=1200,1600 "file://$(realpath "$RUNS/bench-check/report.html")"
  fi
}

case "${1:-all}" in
  classifiers) classifiers ;;
  inverters) inverters ;;
  dbrox) dbrox ;;
  copy) copy ;;
  check) check ;;
  all) classifiers; inverters; copy; check ;;
  *) echo "usage: $0 [all|classifiers|inverters|dbrox|copy|check]" >&2; exit 2 ;;
esac
