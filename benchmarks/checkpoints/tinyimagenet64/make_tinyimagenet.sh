#!/usr/bin/env bash
# Regenerate the six Tiny ImageNet checkpoints of issue 10 in benchmarks/checkpoints/tinyimagenet64/, with invkit's
# own commands only, then the bench and the probes on them:
#   classifier_standard, classifier_robust  `invkit train-classifier` (resnet18s; standard, and FGSM-RS robust)
#   biggan_standard, biggan_robust          `invkit train --inverter biggan_proj.paper` against each classifier
#   dbrox_standard, dbrox_robust            `invkit train --inverter dosovitskiy_brox.paper` against each classifier
#   evaluator                               `invkit train-classifier` (vgg11s): the bench's independent evaluator
#   bench                                   `invkit bench` on val, n = 1000, 3 inverters x 2 classifiers, with the evaluator
#   study                                   `invkit study make`: the human-study page of the paper's Table 1, row 1
#   probes                                  `invkit probe all` with each classifier and its biggan_proj
#   trend                                   biggan_proj's bench numbers at every 1000th G step (agreement_by_step.py)
#   channels, channels-gan                  issue 25: dosovitskiy_brox per observation channel and for the penultimate
#                                           layer (both classifiers); biggan_proj topk:5/label (robust) via --init-from
#   copy-channels, leakage                  their inference weights into leakage/, then the leakage benches and tables
#   paper-gans, paper-trend                 issue 22: biggan_proj.paper as compare_gan builds it, trend at equal steps
#
# STATUS: the commands below are the ones that made the committed folders (see README.md beside this script for
# which machine ran each, when, and for how long). Every training writes resumable state: rerun the same stage with
# RESUME=1 to continue after an interruption.
#
# usage: benchmarks/checkpoints/tinyimagenet64/make_tinyimagenet.sh [classifiers|evaluator|inverters|gans|copy|
#                                                                      resume-state|bench-optim|bench|study|probes|trend|
#                                                                      channels|channels-gan|copy-channels|leakage|
#                                                                      paper-gans|paper-trend|all]
# env:   TIN          Tiny ImageNet in ImageFolder layout with train/ and val/ (default ~/.cache/invkit-data/tinyimagenet64;
#                     unpack ../shared/data/tinyimagenet64.tar.gz there). The first command decodes it once into the
#                     uint8 cache (<cache>/decoded/, 614 MB for train at 64x64, 38 s on the shared machine).
#        RUNS         where the full run folders go (default ~/.cache/invkit/tinyimagenet_runs)
#        DEVICE       cpu (default) or cuda: the inverters at 64x64 need a GPU (see "inverters" below)
#        RESUME=1     continue the runs in $RUNS instead of starting them
#        GAN_STEPS    biggan_proj's G steps on the CPU (default 20000: the target fixed on 2026-12-01 before resuming the
#                     step-9000 runs, from the trend's extrapolation, not from a val pick; see README.md for where the
#                     committed folders and resume/ stand)
set -euo pipefail
cd "$(dirname "$0")/../../.."
TIN=${TIN:-$HOME/.cache/invkit-data/tinyimagenet64}
RUNS=${RUNS:-$HOME/.cache/invkit/tinyimagenet_runs}
INVKIT=${INVKIT:-invkit}
DEVICE=${DEVICE:-cpu}
OUT=benchmarks/checkpoints/tinyimagenet64
EPS=0.00784313725490196  # 2/255, L-inf, for the robust training and the PGD evaluation of both classifiers
RESUME_FLAG=$([ "${RESUME:-0}" = 1 ] && echo --resume || true)
GAN_STEPS=${GAN_STEPS:-20000}

# ------------------------------------------------------------------------------------------------ classifiers
# resnet18s (3x3 stem, no max-pool) at width 32 on images resized to 32x32 (--input-size 32 is the stem choice: the
# classifier resizes 64x64 inputs itself, so bench and the inverters still take 64x64 data). Step times measured on
# the idle 2-core dev machine: standard 0.6 s per step of 128 with 2 threads (15 epochs: 1.0 h); FGSM-RS 2.0 s per
# step with 1 thread while an inverter trained on the other core (5 epochs: 1.1 h). The robust one gets 5 epochs,
# not 10, so that it and the standard classifier's inverters fit one 3-hour session side by side.
classifiers() {
  local common=(--arch resnet18s --width 32 --data "$TIN" --input-size 32 --batch-size 128 --optimizer sgd
    --lr 0.1 --weight-decay 5e-4 --augment --norm linf --eps "$EPS" --eval-eps "$EPS" --eval-steps 10
    --eval-samples 1000 --seed 0 --device "$DEVICE")
  nice -n 10 env OMP_NUM_THREADS=2 "$INVKIT" train-classifier "${common[@]}" --epochs 15 --checkpoint-every 400 \
    --out "$RUNS/classifier_standard" $RESUME_FLAG
  nice -n 10 env OMP_NUM_THREADS=1 "$INVKIT" train-classifier "${common[@]}" --epochs 5 --checkpoint-every 200 \
    --adv fgsm --eps-warmup 0.1 --out "$RUNS/classifier_robust" $RESUME_FLAG
}

# -------------------------------------------------------------------------------------------------- evaluator
# The bench's independent evaluator (issue 21): another architecture than the two resnet18s classifiers it judges,
# VGG-11 with batch norm (vgg11s) at width 32, on the full 64x64 images (the classifiers see 32x32), standard
# training with the classifiers' recipe (SGD 0.1, cosine, weight decay 5e-4, 4 px shifts and flips, 15 epochs), bf16
# autocast and channels_last (this machine has AMX: 0.27 s per step of 128 against 0.63 s in fp32, measured alone).
evaluator() {
  nice -n 10 env OMP_NUM_THREADS=2 "$INVKIT" train-classifier --arch vgg11s --width 32 --data "$TIN" --batch-size 128 \
    --optimizer sgd --lr 0.1 --weight-decay 5e-4 --augment --precision bf16 --channels-last --norm linf --eps "$EPS" \
    --eval-steps 10 --eval-samples 1000 --seed 0 --device "$DEVICE" --epochs 15 --checkpoint-every 400 \
    --out "$RUNS/evaluator" $RESUME_FLAG
}

# -------------------------------------------------------------------------------------------------- inverters
# biggan_proj.paper at 64x64, ch=96 costs 404.6 GFLOP per batch element and step (counted): out of reach on a CPU.
# With a GPU (DEVICE=cuda, bf16 by default there): batch 256, 20k G steps, ~2 h on one H100/H200 at MFU 0.3
# (projected, not run). On the CPU: 32x32 output (the classifiers see 32x32 anyway), ch=16, batch 64, 9000 G steps,
# self-attention at 32 in G and 16 in D (the paper's places, halved with the resolution), G lr 4e-4 (the MNIST runs
# found the paper's 1e-4 moves G too little in a CPU budget), EMA decay 0.999 from G step 1000 (the paper's 0.9999
# from 40k assumes 250k steps). About 1 s per G step with 1 thread: more than one session per run; the runs went to
# 3000 steps in one session and on with RESUME=1 in the next ones (resuming is bit-exact: the same batches, noise and
# states as one uninterrupted run). `gans` trains only these two (RESUME=1 continues them; on a fresh machine, first
# put resume/ and the classifier folders into $RUNS as README.md shows). Every checkpoint is kept
# (--keep-checkpoints 0) for the trend stage.
# dosovitskiy_brox.paper at 32x32 with width_mult 0.25 (fc 1024 x3, a 4x4x64 map: 10.5 MB of float32 weights, which
# keeps the six folders under 50 MB), batch 64, 1000 steps: about 1 s per step with 1 thread.
# Each pair of runs goes side by side, one thread each (OMP_NUM_THREADS=1; two threads per run on 2 cores are slower).
train_inverter() {
  local name=$1 inverter=$2 label=$3 steps=$4 batch=$5
  shift 5
  nice -n 10 env OMP_NUM_THREADS=1 "$INVKIT" train --classifier "$RUNS/classifier_$label" --inverter "$inverter" \
    --data "$TIN" --out "$RUNS/$name" --steps "$steps" --batch-size "$batch" --seed 0 --device "$DEVICE" \
    --save-every 500 --sample-every 1000 --log-every 100 --keep-checkpoints 3 $RESUME_FLAG "$@"
}

# Since issue 22, biggan_proj.paper follows compare_gan (unpool upsampling, its CBN path, no skip in D's last block, D
# on [0, 1], its init). The committed biggan folders and resume/ were trained before, with the fields those runs
# recorded (upsample=nearest, cbn=mlp, d_shortcut=identity, d_input_range=-1..1, init=pytorch): RESUME=1 keeps that
# network (invkit train rebuilds a resumed run from its record); a new run of this stage trains the compare_gan one.
BIGGAN_CPU=(--resolution 32 --ch 16 --lr-g 4e-4 -o g_attention=32 -o d_attention=16 -o ema_decay=0.999
  -o ema_start=1000 --keep-checkpoints 0)
train_gan() {
  local label=$1
  if [ "$DEVICE" = cpu ]; then
    train_inverter "biggan_$label" biggan_proj.paper "$label" "$GAN_STEPS" 64 "${BIGGAN_CPU[@]}"
  else
    train_inverter "biggan_$label" biggan_proj.paper "$label" 20000 256 --keep-checkpoints 0
  fi
}

# Issue 22: the same two runs with biggan_proj.paper as it is now (compare_gan's generator and discriminator details),
# into biggan_cg_{standard,robust}, fp32 as the committed runs were, so that `paper-trend` compares both networks at
# equal G steps (the committed trend holds the earlier network's numbers at every 1000th step). NOT RUN YET: the CPU of
# the 2026-12-06 sessions went to issues 21 and 25; 9000 G steps are about 2.5 h per run with one thread each.
paper_gans() {
  local label
  classifiers_in_runs
  for label in standard robust; do
    train_inverter "biggan_cg_$label" biggan_proj.paper "$label" "${PAPER_STEPS:-9000}" 64 "${BIGGAN_CPU[@]}" \
      --precision fp32 --no-channels-last &
  done
  wait
}
paper_trend() {
  mkdir -p "$RUNS/trend-cg"
  TREND_PREFIX=biggan_cg nice -n 10 env OMP_NUM_THREADS=1 python "$OUT/agreement_by_step.py" "$RUNS" "$TIN" \
    "$RUNS/trend-cg"
}

# waits for every background job given by pid; the script stops (set -e) when one failed
wait_all() {
  local pid
  for pid in "$@"; do wait "$pid"; done
}

inverters() {
  for label in standard robust; do
    train_gan "$label" &
    local gan=$!
    train_inverter "dbrox_$label" dosovitskiy_brox.paper "$label" 1000 64 -o width_mult=0.25 &
    wait_all "$gan" $!
  done
}

# Issue 25: dosovitskiy_brox.paper trained for each observation channel (and for the penultimate layer) of both
# classifiers, with the settings of dbrox_standard/dbrox_robust (their `logits` runs), two runs side by side.
# About 10 x 700 s of one core; `leakage` then benches them. On a machine whose $RUNS lacks the classifier folders,
# the committed ones are copied there first (the same weights: the inverters record their digest).
CHANNELS=(probs topk:5 topk:1 label)
channel_dir() { echo "dbrox_$1_$(echo "$2" | tr ':' '_')"; }
classifiers_in_runs() {
  local label
  for label in standard robust; do
    if [ ! -f "$RUNS/classifier_$label/model.safetensors" ]; then
      mkdir -p "$RUNS/classifier_$label" && cp "$OUT/classifier_$label"/* "$RUNS/classifier_$label/"
    fi
  done
}
channels() {
  local label ch
  classifiers_in_runs
  for label in standard robust; do
    for ch in "${CHANNELS[@]}"; do
      train_inverter "$(channel_dir "$label" "$ch")" dosovitskiy_brox.paper "$label" 1000 64 -o width_mult=0.25 \
        --channel "$ch" &
      [ "$(jobs -rp | wc -l)" -ge 2 ] && wait -n
    done
    train_inverter "dbrox_${label}_penultimate" dosovitskiy_brox.paper "$label" 1000 64 -o width_mult=0.25 \
      --layer penultimate &
    [ "$(jobs -rp | wc -l)" -ge 2 ] && wait -n
  done
  wait
}

# Issue 25: biggan_proj for topk:5 and label on the robust classifier, started from the committed logits run's
# resumable state (resume/biggan_robust, step 12000) with `invkit train --init-from`, and the logits run started the
# same way as the control trained equally long: GAN_FORK_STEPS (default 500, what made leakage/biggan_robust_*) more
# G steps each, with the recorded settings of that run (precision: the trainer's default, bf16 + channels_last where
# bf16 is native). One run at a time (FORK_JOBS, default 1) beside the channels stage. 500 steps were not enough for
# topk:5 and label (their samples collapse; the results page shows it): GAN_FORK_STEPS=3000 in new --out folders (or
# RESUME=1 with a larger value) is the next try.
GAN_FORK_STEPS=${GAN_FORK_STEPS:-500}
GAN_FORK_CHANNELS=(logits topk:5 label)
channels_gan() {
  local src="$RUNS/biggan_robust_at_resume" start ch
  classifiers_in_runs
  [ -d "$src" ] || cp -r "$OUT/resume/biggan_robust" "$src"
  start=$(basename "$(last_checkpoint biggan_robust_at_resume)" | sed 's/^step_0*//')
  for ch in "${GAN_FORK_CHANNELS[@]}"; do
    nice -n 10 env OMP_NUM_THREADS=1 "$INVKIT" train --init-from "$src" --channel "$ch" \
      --classifier "$RUNS/classifier_robust" --data "$TIN" --device "$DEVICE" --steps $((start + GAN_FORK_STEPS)) \
      --save-every 500 --sample-every 500 --log-every 100 --keep-checkpoints 0 \
      --out "$RUNS/$(fork_dir "$ch")" $RESUME_FLAG &
    [ "$(jobs -rp | wc -l)" -ge "${FORK_JOBS:-1}" ] && wait -n
  done
  wait
}

# The inference weights the results page's leakage numbers come from (issue 25): the last checkpoint of every channel
# and layer run, float32 as trained (config.json + model.safetensors), in $OUT/leakage/ (about 110 MB).
LEAK=$OUT/leakage
fork_dir() { channel_dir robust "$1" | sed 's/^dbrox/biggan/'; }
copy_channels() {
  local label ch
  for label in standard robust; do
    for ch in "${CHANNELS[@]}"; do copy_inference "$(channel_dir "$label" "$ch")"; done
    copy_inference "dbrox_${label}_penultimate"
  done
  for ch in "${GAN_FORK_CHANNELS[@]}"; do copy_inference "$(fork_dir "$ch")"; done
  du -sh "$LEAK"
}
copy_inference() {
  local ckpt
  ckpt=$(last_checkpoint "$1")
  mkdir -p "$LEAK/$1" && cp "$ckpt/config.json" "$ckpt/model.safetensors" "$LEAK/$1/"
}

# The leakage curves of issue 25 from the committed folders, with the evaluator, n = 1000 val images, seed 0 (the
# bench's images): dosovitskiy_brox over logits (the committed dbrox_* folders), probs, topk:5, topk:1 and label for
# both classifiers; the penultimate layer benched on the same images; biggan_proj over logits, topk:5 and label for
# the robust classifier (the three runs started from the logits run's step 12000). Then the page's tables.
leakage() {
  local label ch ckpts
  for label in standard robust; do
    ckpts=(--checkpoint "$OUT/dbrox_$label")
    for ch in "${CHANNELS[@]}"; do ckpts+=(--checkpoint "$LEAK/$(channel_dir "$label" "$ch")"); done
    nice -n 10 env OMP_NUM_THREADS=1 "$INVKIT" leakage --classifier "$OUT/classifier_$label" \
      --channels logits,probs,topk:5,topk:1,label --inverter dosovitskiy_brox "${ckpts[@]}" --evaluator "$OUT/evaluator" \
      --data "$TIN" -n 1000 --seed 0 --device "$DEVICE" --out "$RUNS/leakage-$label"
    nice -n 10 env OMP_NUM_THREADS=1 "$INVKIT" bench --classifier "$OUT/classifier_$label" --inverter dosovitskiy_brox \
      --checkpoint "$LEAK/dbrox_${label}_penultimate" --evaluator "$OUT/evaluator" --data "$TIN" -n 1000 --seed 0 \
      --device "$DEVICE" --out "$RUNS/layer-$label"
  done
  ckpts=()
  for ch in "${GAN_FORK_CHANNELS[@]}"; do ckpts+=(--checkpoint "$LEAK/$(fork_dir "$ch")"); done
  nice -n 10 env OMP_NUM_THREADS=1 "$INVKIT" leakage --classifier "$OUT/classifier_robust" \
    --channels "$(IFS=,; echo "${GAN_FORK_CHANNELS[*]}")" --inverter biggan_proj "${ckpts[@]}" \
    --evaluator "$OUT/evaluator" --data "$TIN" -n 1000 --seed 0 --device "$DEVICE" --out "$RUNS/leakage-biggan-robust"
  python "$OUT/leakage_tables.py" "$RUNS"
}

# both biggan_proj runs side by side; with RESUME=1 on a machine whose $RUNS lacks them, from the committed resume/
# state and classifier folders first
gans() {
  local label
  classifiers_in_runs
  for label in standard robust; do
    if [ "${RESUME:-0}" = 1 ] && [ ! -d "$RUNS/biggan_$label" ]; then
      cp -r "$OUT/resume/biggan_$label" "$RUNS/"
    fi
  done
  train_gan standard &
  local standard=$!
  train_gan robust &
  wait_all "$standard" $!
}

# ------------------------------------------------------------------------------------- copy (inference weights)
# Everything as trained, in float32: bench matches an inverter to its classifier by the weights' digest, and float16
# copies (to_half.py) changed the numbers by one image of 1000: top-1 agreement of dbrox_standard (at 1000 steps) and
# of biggan_robust, identification of biggan_standard (at 9000 G steps; at 3000 float16 had given the same rows).
copy() {
  local name ckpt
  for name in classifier_standard classifier_robust evaluator; do
    mkdir -p "$OUT/$name"
    cp "$RUNS/$name/config.json" "$RUNS/$name/model.safetensors" "$RUNS/$name/report.json" "$OUT/$name/"
  done
  for name in biggan_standard biggan_robust dbrox_standard dbrox_robust; do
    ckpt=$(last_checkpoint "$name")
    mkdir -p "$OUT/$name" && cp "$ckpt/config.json" "$ckpt/model.safetensors" "$OUT/$name/"
  done
  resume_state
  du -sh --exclude=resume "$OUT"  # issue 10: at most 50 MB in all (the six folders)
}

last_checkpoint() {
  ls -d "$RUNS/$1"/checkpoints/step_* | sort | tail -n 1
}

# the biggan_proj runs' resumable state (README.md, "resume/"): their last checkpoint with train_state, the log and
# the train config, for training them further in a later session. `copy` refreshes it; `resume-state` alone keeps a
# run's progress at the end of a session without replacing the benched folders.
resume_state() {
  local name ckpt
  for name in biggan_standard biggan_robust; do
    ckpt=$(last_checkpoint "$name")
    rm -rf "$OUT/resume/$name" && mkdir -p "$OUT/resume/$name/checkpoints"
    cp "$RUNS/$name/train_config.json" "$RUNS/$name/log.jsonl" "$OUT/resume/$name/"
    cp -r "$ckpt" "$OUT/resume/$name/checkpoints/"
  done
}

# ------------------------------------------------------------------------------------------------ bench, probes
# Issue 21: with the independent evaluator (evaluator/, vgg11s), the intervals and paired comparisons, and 64 kept
# reconstructions per pair for the human study. One thread (OMP_NUM_THREADS=1): optim's reconstructions are kept in
# $RUNS/recon-cache as they are made (an interrupted run resumes there), and they are reused only for bit-identical
# logits, which a different thread count need not give. Each optim pair can also be made on its own core first
# (`bench-optim`, the same cache folder), then `bench` picks their reconstructions up.
BENCH_ARGS=(--inverter biggan_proj,dosovitskiy_brox,optim
  --checkpoint "$OUT/biggan_standard" --checkpoint "$OUT/biggan_robust"
  --checkpoint "$OUT/dbrox_standard" --checkpoint "$OUT/dbrox_robust"
  --data "$TIN" -n 1000 --seed 0 --device "$DEVICE")
bench() {
  nice -n 10 env OMP_NUM_THREADS=1 "$INVKIT" bench --classifier "$OUT/classifier_standard,$OUT/classifier_robust" \
    "${BENCH_ARGS[@]}" --evaluator "$OUT/evaluator" --keep-images 64 --recon-cache "$RUNS/recon-cache" \
    --out "$RUNS/bench"
  # the report screenshot committed beside the results page (Debian's chromium package)
  if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
      --disable-sync --no-first-run --user-data-dir="$(mktemp -d)" --window-size=1400,1800 \
      --screenshot=benchmarks/results/tinyimagenet64-evaluator-report-screenshot.png \
      "file://$(realpath "$RUNS/bench/report.html")"
  fi
}

# optim's reconstructions for each classifier in its own process, side by side (one thread each): 2000 images at
# about 2.4 s each is the longest part of the bench; resumable (RESUME is not needed: the cache is always resumed)
bench_optim() {
  local label part
  mkdir -p "$RUNS/recon-cache"
  for label in standard robust; do
    part="$OUT/resume/bench-recon-cache/classifier_${label}__optim.safetensors"  # a session's unfinished inversion
    if [ -f "$part" ] && [ ! -e "$RUNS/recon-cache/$(basename "$part")" ]; then cp "$part" "$RUNS/recon-cache/"; fi
    nice -n 15 env OMP_NUM_THREADS=1 "$INVKIT" bench --classifier "$OUT/classifier_$label" --inverter optim \
      --data "$TIN" -n 1000 --seed 0 --device "$DEVICE" --recon-cache "$RUNS/recon-cache" \
      --out "$RUNS/bench-optim-$label" &
  done
  wait
}

# the human-study page of the paper's Table 1, row 1 (robust classifier: biggan_proj vs dosovitskiy_brox), from the
# bench's kept reconstructions, and a screenshot of its first trial
study() {
  "$INVKIT" study make "$RUNS/bench" --a classifier_robust/biggan_proj --b classifier_robust/dosovitskiy_brox \
    -n 64 --seed 0 --out "$RUNS/study-robust-bp-vs-db"
  if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
      --disable-sync --no-first-run --user-data-dir="$(mktemp -d)" --window-size=1200,900 \
      --screenshot=benchmarks/results/tinyimagenet64-study-screenshot.png \
      "file://$(realpath "$RUNS/study-robust-bp-vs-db/study.html")"
  fi
}

probes() {
  for kind in standard robust; do
    nice -n 10 "$INVKIT" probe all --classifier "$OUT/classifier_$kind" --checkpoint "$OUT/biggan_$kind" \
      --data "$TIN" -n 64 --seed 0 --device "$DEVICE" --out "$RUNS/probes-$kind"
  done
}

# biggan_proj's bench numbers (agreement, identification, ...) at every 1000th saved G step of both runs, on the
# bench's 1000 val images: how far training has brought them, not a checkpoint pick (copy takes the last step).
# With RESUME=1 the committed rows seed it, for the steps whose checkpoints a fresh machine no longer has (runs resumed
# from resume/ keep only the steps trained there); the script checks the steps both have by weights digest.
trend() {
  local committed=benchmarks/results/tinyimagenet64-agreement-by-step/agreement_by_step.json
  mkdir -p "$RUNS/trend"
  if [ "${RESUME:-0}" = 1 ] && [ ! -f "$RUNS/trend/agreement_by_step.json" ]; then cp "$committed" "$RUNS/trend/"; fi
  nice -n 10 env OMP_NUM_THREADS=1 python "$OUT/agreement_by_step.py" "$RUNS" "$TIN" "$RUNS/trend"
}

case "${1:-all}" in
  classifiers) classifiers ;;
  evaluator) evaluator ;;
  inverters) inverters ;;
  gans) gans ;;
  copy) copy ;;
  resume-state) resume_state ;;
  bench) bench ;;
  bench-optim) bench_optim ;;
  study) study ;;
  channels) channels ;;
  channels-gan) channels_gan ;;
  copy-channels) copy_channels ;;
  paper-gans) paper_gans ;;
  paper-trend) paper_trend ;;
  leakage) leakage ;;
  probes) probes ;;
  trend) trend ;;
  all) classifiers; evaluator; inverters; copy; bench_optim; bench; study; probes; trend ;;
  *) echo "usage: $0 [classifiers|evaluator|inverters|gans|copy|resume-state|bench-optim|bench|study|probes|trend|channels|leakage|all]" >&2
     exit 2 ;;
esac
