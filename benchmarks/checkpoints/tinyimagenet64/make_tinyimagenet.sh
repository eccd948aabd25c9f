#!/usr/bin/env bash
# Regenerate the six Tiny ImageNet checkpoints of issue 10 in benchmarks/checkpoints/tinyimagenet64/, with invkit's
# own commands only, then the bench and the probes on them:
#   classifier_standard, classifier_robust  `invkit train-classifier` (resnet18s; standard, and FGSM-RS robust)
#   biggan_standard, biggan_robust          `invkit train --inverter biggan_proj.paper` against each classifier
#   dbrox_standard, dbrox_robust            `invkit train --inverter dosovitskiy_brox.paper` against each classifier
#   bench                                   `invkit bench` on val, n = 1000, 3 inverters x 2 classifiers
#   probes                                  `invkit probe all` with each classifier and its biggan_proj
#
# STATUS: SIZED, NOT YET RUN. None of these trainings has been run, and no checkpoint in this folder comes from this
# script yet. The classifier sizes rest on step times measured on the project's shared 2-core CPU; the inverter sizes
# only on counted FLOPs or not at all (said where) -- see benchmarks/results/data-tinyimagenet64-cpu-torch2.14.1.md.
# Every training writes resumable state: rerun the same stage with RESUME=1 to continue after an interruption.
#
# usage: benchmarks/checkpoints/tinyimagenet64/make_tinyimagenet.sh [classifiers|inverters|copy|bench|probes|all]
# env:   TIN          Tiny ImageNet in ImageFolder layout with train/ and val/ (default ~/.cache/invkit-data/tinyimagenet64;
#                     unpack ../shared/data/tinyimagenet64.tar.gz there). The first command decodes it once into the
#                     uint8 cache (<cache>/decoded/, 614 MB for train at 64x64, 38 s on the shared machine).
#        RUNS         where the full run folders go (default ~/.cache/invkit/tinyimagenet_runs)
#        DEVICE       cpu (default) or cuda: the inverters at 64x64 need a GPU (see "inverters" below)
#        RESUME=1     continue the runs in $RUNS instead of starting them
set -euo pipefail
cd "$(dirname "$0")/../../.."
TIN=${TIN:-$HOME/.cache/invkit-data/tinyimagenet64}
RUNS=${RUNS:-$HOME/.cache/invkit/tinyimagenet_runs}
INVKIT=${INVKIT:-invkit}
DEVICE=${DEVICE:-cpu}
OUT=benchmarks/checkpoints/tinyimagenet64
EPS=0.00784313725490196  # 2/255, L-inf, for the robust training and the PGD evaluation of both classifiers
RESUME_FLAG=$([ "${RESUME:-0}" = 1 ] && echo --resume || true)

# ------------------------------------------------------------------------------------------------ classifiers
# resnet18s (3x3 stem, no max-pool) at width 32 on images resized to 32x32 (--input-size 32 is the stem choice: the
# classifier resizes 64x64 inputs itself, so bench and the inverters still work at 64x64). Measured CPU time per step
# of 128 (time_classifier_steps.py; 391 steps per epoch):
#   width 16 @32: 2.82 core-s | width 32 @32: 3.85 | width 16 @64: 5.42 | width 32 @64: 15.1
#   width 32 @32 FGSM-RS: 7.89 | PGD-3: 17.57 | width 32 @32 with bf16 + channels_last: 9.58 (slower than fp32: left off)
# On an idle 2-core machine: standard 12.5 min/epoch -> 15 epochs ~3.1 h; FGSM-RS 25.7 min/epoch -> 10 epochs
# ~4.3 h; one after the other, both threads each. On the shared machine (10% of it) multiply by about 5-10.
# Expected, not measured: >= 35% val top-1 for the standard one (the issue's target); check report.json.
classifiers() {
  local common=(--arch resnet18s --width 32 --data "$TIN" --input-size 32 --batch-size 128 --optimizer sgd
    --lr 0.1 --weight-decay 5e-4 --augment --norm linf --eps "$EPS" --eval-eps "$EPS" --eval-steps 10
    --eval-samples 1000 --checkpoint-every 400 --seed 0 --device "$DEVICE")
  nice -n 10 env OMP_NUM_THREADS=2 "$INVKIT" train-classifier "${common[@]}" --epochs 15 \
    --out "$RUNS/classifier_standard" $RESUME_FLAG
  nice -n 10 env OMP_NUM_THREADS=2 "$INVKIT" train-classifier "${common[@]}" --epochs 10 --adv fgsm \
    --eps-warmup 0.1 --out "$RUNS/classifier_robust" $RESUME_FLAG
}

# -------------------------------------------------------------------------------------------------- inverters
# biggan_proj.paper (64x64, ch=96) costs 404.6 GFLOP per batch element and step (counted; 3 images drawn): out of
# reach on a CPU (0.07 img/s measured, benchmarks/results/throughput-biggan64-cpu-torch2.14.1.md). With a GPU
# (DEVICE=cuda, bf16 by default there): batch 256, 20k G steps = 2.1e18 FLOP, ~2 h on one H100/H200 at MFU 0.3
# (projected, not measured). On the CPU the fallback is 32x32 output at ch=16, batch 16, 3000 G steps: by FLOP
# scaling from the ch=32 64x64 count (185.8 GFLOP per step of 4) about 3 GFLOP per batch element, 46 GFLOP per
# step; not timed here -- time a few steps first. Report it as 32x32 if used.
# dosovitskiy_brox.paper (fc 4096x3 -> 64x64): batch 64, 20k steps; not timed here either.
train_inverter() {
  local name=$1 inverter=$2 label=$3 steps=$4 batch=$5
  shift 5
  nice -n 10 "$INVKIT" train --classifier "$RUNS/classifier_$label" --inverter "$inverter" --data "$TIN" \
    --out "$RUNS/$name" --steps "$steps" --batch-size "$batch" --seed 0 --device "$DEVICE" \
    --save-every 500 --sample-every 1000 --log-every 100 --keep-checkpoints 3 $RESUME_FLAG "$@"
}

inverters() {
  if [ "$DEVICE" = cpu ]; then
    train_inverter biggan_standard biggan_proj.paper standard 3000 16 --resolution 32 --ch 16
    train_inverter biggan_robust biggan_proj.paper robust 3000 16 --resolution 32 --ch 16
  else
    train_inverter biggan_standard biggan_proj.paper standard 20000 256
    train_inverter biggan_robust biggan_proj.paper robust 20000 256
  fi
  train_inverter dbrox_standard dosovitskiy_brox.paper standard 20000 64
  train_inverter dbrox_robust dosovitskiy_brox.paper robust 20000 64
}

# ------------------------------------------------------------------------------------- copy (inference weights)
copy() {
  for name in classifier_standard classifier_robust; do
    mkdir -p "$OUT/$name"
    cp "$RUNS/$name/config.json" "$RUNS/$name/model.safetensors" "$RUNS/$name/report.json" "$OUT/$name/"
  done
  for name in biggan_standard biggan_robust dbrox_standard dbrox_robust; do
    local ckpt
    ckpt=$(ls -d "$RUNS/$name"/checkpoints/step_* | sort | tail -n 1)
    mkdir -p "$OUT/$name"
    cp "$ckpt/config.json" "$ckpt/model.safetensors" "$OUT/$name/"
  done
  du -sh "$OUT"  # issue 10: at most 50 MB in all
}

# ------------------------------------------------------------------------------------------------ bench, probes
bench() {
  nice -n 10 "$INVKIT" bench --classifier "$OUT/classifier_standard,$OUT/classifier_robust" \
    --inverter biggan_proj,dosovitskiy_brox,optim \
    --checkpoint "$OUT/biggan_standard" --checkpoint "$OUT/biggan_robust" \
    --checkpoint "$OUT/dbrox_standard" --checkpoint "$OUT/dbrox_robust" \
    --data "$TIN" -n 1000 --seed 0 --device "$DEVICE" --out "$RUNS/bench"
}

probes() {
  for kind in standard robust; do
    nice -n 10 "$INVKIT" probe all --classifier "$OUT/classifier_$kind" --checkpoint "$OUT/biggan_$kind" \
      --data "$TIN" -n 64 --seed 0 --device "$DEVICE" --out "$RUNS/probes-$kind"
  done
}

case "${1:-all}" in
  classifiers) classifiers ;;
  inverters) inverters ;;
  copy) copy ;;
  bench) bench ;;
  probes) probes ;;
  all) classifiers; inverters; copy; bench; probes ;;
  *) echo "usage: $0 [classifiers|inverters|copy|bench|probes|all]" >&2; exit 2 ;;
esac
