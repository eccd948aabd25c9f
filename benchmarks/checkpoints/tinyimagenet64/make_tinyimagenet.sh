#!/usr/bin/env bash
# Regenerate the six Tiny ImageNet checkpoints of issue 10 in benchmarks/checkpoints/tinyimagenet64/, with invkit's
# own commands only, then the bench and the probes on them:
#   classifier_standard, classifier_robust  `invkit train-classifier` (resnet18s; standard, and FGSM-RS robust)
#   biggan_standard, biggan_robust          `invkit train --inverter biggan_proj.paper` against each classifier
#   dbrox_standard, dbrox_robust            `invkit train --inverter dosovitskiy_brox.paper` against each classifier
#   bench                                   `invkit bench` on val, n = 1000, 3 inverters x 2 classifiers
#   probes                                  `invkit probe all` with each classifier and its biggan_proj
#
# STATUS: SIZED, NOT YET RUN. The step times behind the sizes below were measured on the project's shared 2-core CPU
# (benchmarks/results/data-tinyimagenet64-cpu-torch2.14.1.md); none of these trainings has been run to the end and
# no checkpoint in this folder comes from this script yet. Expect the wall times to be off by the load of the
# machine they run on. Every training writes resumable state: rerun the same stage with RESUME=1 to continue.
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
# resnet18s (3x3 stem, no max-pool) at width 32 on images resized to 32x32 (--input-size 32: the stem's choice;
# the classifier resizes 64x64 inputs itself, so bench and the inverters still work at 64x64). Measured on the
# shared 2-core CPU: 1.0-1.6 s per step of 128 (standard) -> ~8 min/epoch; FGSM-RS costs ~2x. 30 epochs standard
# (~4 h) and 20 epochs FGSM-RS (~5 h) at one run per core; the standard target is >= 35% val top-1.
classifiers() {
  local common=(--arch resnet18s --width 32 --data "$TIN" --input-size 32 --batch-size 128 --optimizer sgd
    --lr 0.1 --weight-decay 5e-4 --augment --norm linf --eval-eps "$EPS" --eval-steps 10 --eval-samples 1000
    --checkpoint-every 400 --seed 0 --device "$DEVICE")
  nice -n 10 env OMP_NUM_THREADS=1 "$INVKIT" train-classifier "${common[@]}" --epochs 30 --eps "$EPS" \
    --out "$RUNS/classifier_standard" $RESUME_FLAG &
  nice -n 10 env OMP_NUM_THREADS=1 "$INVKIT" train-classifier "${common[@]}" --epochs 20 --adv fgsm --eps "$EPS" \
    --eps-warmup 0.1 --out "$RUNS/classifier_robust" $RESUME_FLAG &
  wait
}

# -------------------------------------------------------------------------------------------------- inverters
# biggan_proj.paper (64x64, ch=96) costs ~135 GFLOP per image drawn: out of reach on a CPU (0.07 img/s measured,
# benchmarks/results/throughput-biggan64-cpu-torch2.14.1.md). On one GPU (DEVICE=cuda, bf16 by default there):
# batch 256, 20k G steps. On the CPU, the fallback is 32x32 output at ch=32 (say so in the results).
# dosovitskiy_brox.paper runs at the classifier's logits -> 64x64 image; batch 64, 20k steps.
train_inverter() {
  local name=$1 inverter=$2 label=$3 steps=$4 batch=$5
  shift 5
  nice -n 10 "$INVKIT" train --classifier "$RUNS/classifier_$label" --inverter "$inverter" --data "$TIN" \
    --out "$RUNS/$name" --steps "$steps" --batch-size "$batch" --seed 0 --device "$DEVICE" \
    --save-every 500 --sample-every 1000 --log-every 100 --keep-checkpoints 3 $RESUME_FLAG "$@"
}

inverters() {
  if [ "$DEVICE" = cpu ]; then
    train_inverter biggan_standard biggan_proj.paper standard 20000 32 --resolution 32 --ch 32
    train_inverter biggan_robust biggan_proj.paper robust 20000 32 --resolution 32 --ch 32
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
