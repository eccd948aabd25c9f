#!/usr/bin/env bash
# Train the two MNIST demo classifiers and the demo evaluator shipped in invkit/assets/demo/ (used by the offline `invkit bench`):
#   classifier_standard: smallcnn, standard training
#   classifier_robust:   smallcnn, PGD adversarial training (Madry et al. 2018), Linf eps 0.2, PGD-5, 2 epochs
#   evaluator:           vgg11s (VGG-11 with batch norm, width 16), standard training, 2 epochs: the independent
#                        evaluator of the default bench (issue 21), another architecture than the classifiers
# Both are evaluated with the same attack (PGD-40, Linf, eps 0.1 / 0.2 / 0.3, random start, the same 2000
# test images), so their PGD accuracies compare directly. CPU only; one thread each.
#
# usage: benchmarks/demo/train_demo_classifiers.sh [all|standard|robust|evaluator|copy]
#   all (default): train both classifiers (in parallel), then the evaluator, then copy config.json + model.safetensors into the assets.
# env:   MNIST     ImageFolder MNIST with train/ and test/ (default ~/.cache/invkit-data/mnist)
#        RUNS      where the full run folders go (default ~/.cache/invkit/demo_runs)
set -euo pipefail
cd "$(dirname "$0")/../.."
MNIST=${MNIST:-$HOME/.cache/invkit-data/mnist}
RUNS=${RUNS:-$HOME/.cache/invkit/demo_runs}
INVKIT=${INVKIT:-invkit}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
EVAL=(--eval-eps 0.1 --eval-eps 0.2 --eval-eps 0.3 --eval-steps 40 --eval-samples 2000 --norm linf --device cpu)

standard() {
  nice -n 10 "$INVKIT" train-classifier --arch smallcnn --data "$MNIST" --out "$RUNS/classifier_standard" \
    --epochs 3 --batch-size 128 --lr 1e-3 --seed 0 --adv none --eps 0.2 "${EVAL[@]}"
}

robust() {
  nice -n 10 "$INVKIT" train-classifier --arch smallcnn --data "$MNIST" --out "$RUNS/classifier_robust" \
    --epochs 2 --batch-size 128 --lr 1e-3 --seed 0 --adv pgd --eps 0.2 --adv-steps 5 --eps-warmup 0.2 "${EVAL[@]}"
}

# The demo evaluator (issue 21): another architecture than the two smallcnn classifiers it judges (VGG-11 with batch
# norm, width 16), standard training; the default `invkit bench` scores every reconstruction with it.
evaluator() {
  nice -n 10 "$INVKIT" train-classifier --arch vgg11s --width 16 --data "$MNIST" --out "$RUNS/evaluator" \
    --epochs 2 --batch-size 128 --lr 1e-3 --seed 1 --adv none --eps 0.2 --eval-steps 10 --eval-samples 500 \
    --norm linf --device cpu  # its clean accuracy is what matters; a short PGD-10 check only
}

copy() {
  for name in classifier_standard classifier_robust evaluator; do
    mkdir -p "invkit/assets/demo/$name"
    cp "$RUNS/$name/config.json" "$RUNS/$name/model.safetensors" "invkit/assets/demo/$name/"
  done
}

case "${1:-all}" in
  standard) standard ;;
  robust) robust ;;
  evaluator) evaluator ;;
  copy) copy ;;
  all)
    standard &
    pid=$!
    robust
    wait "$pid"  # a bare `wait` returns 0: a failed standard run would be copied
    evaluator
    copy ;;
  *) echo "usage: $0 [all|standard|robust|evaluator|copy]" >&2; exit 2 ;;
esac
