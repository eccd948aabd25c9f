#!/usr/bin/env bash
# Every probe on MNIST (test split) with the demo standard and robust classifiers and their biggan_proj
# inverters, then the results page. Run from the repository root:
#   bash benchmarks/probes/run_probes_mnist.sh RUNS_DIR HEADER.md
set -euo pipefail
RUNS=${1:?runs folder}
HEADER=${2:?header markdown}
MNIST=${MNIST:-$HOME/.cache/invkit-data/mnist}
# OOD data for the grey inverters (the built-in default is MNIST negatives, shipped with invkit).
TINY=${TINY:-$HOME/.cache/invkit-data/tinyimagenet64}
for kind in standard robust; do
  nice -n 10 env OMP_NUM_THREADS=1 invkit probe all \
    --classifier invkit/assets/demo/classifier_$kind --checkpoint invkit/assets/demo/biggan_$kind \
    --data "$MNIST" --ood-data "$TINY" -n 64 --seed 0 --device cpu --out "$RUNS/mnist-$kind"
done
python benchmarks/probes/make_md.py "$RUNS/mnist-standard" "$RUNS/mnist-robust" "$HEADER"
