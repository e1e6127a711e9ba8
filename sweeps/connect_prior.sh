#!/usr/bin/env bash
# Study C (docs/connect.md, seed 001): "a more informative prior gives a smoother parameter space" -- the prior's
# STRENGTH swept at a width where the naive paths have barriers.
#
# sweeps/connect_width.sh (the same nets, pairs, paths and layout) run with one prior per strength: no prior
# (strength 0 of both kinds), weight decay (a Gaussian prior) at each coefficient of WD_COEFS, dropout at each rate
# of DROPOUT_RATES, at the widths STRENGTH_WIDTHS, PAIRS pairs each, connected by the seed's six paths (Linear, Arc,
# Linear+WA, Arc+WA, Linear+OT, Arc+OT: ALIGNED=ot_exact, no weight matching). lossland paper connect tables the max
# accuracy loss against the strength (lossland/studies/connect/strength.py); connect-table is skipped (its tables
# group by prior kind, not strength).
#
#   sweeps/connect_prior.sh                    # embedded: mnist5k on CPU, width 50 (about 2.5 min on 2 cores)
#   SCALE=tiny sweeps/connect_prior.sh         # seconds-scale check: digits, width 8, 1 pair, 1 epoch,
#                                              # weight decay 1e-2 and dropout 0.3 besides none
#   SCALE=full DATA_ROOT=/data/mnist sweeps/connect_prior.sh   # the paper's configs, strengths overridden
#
# Environment: STRENGTH_WIDTHS ("50"), WD_COEFS ("1e-4 1e-3 1e-2"; SCALE=tiny "1e-2"; empty: none), DROPOUT_RATES
# ("0.1 0.3 0.5"; SCALE=tiny "0.3"), and
# connect_width.sh's OUT, PAIRS, EPOCHS, LR, NUM_POINTS, ALIGNED ("ot_exact"), WA_PATHS, JOBS, PYTHON, EXTRA_TRAIN,
# EXTRA_CONNECT, SKIP_TRAIN. Layout: connect_width.sh's, one prior folder per strength: none, weight_decay_<coef>,
# dropout_<rate>.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SCALE:-embedded}" = tiny ]; then  # the seconds-scale check: one strength of each kind besides none
  WD_COEFS=${WD_COEFS-1e-2} DROPOUT_RATES=${DROPOUT_RATES-0.3}
fi
STRENGTH_WIDTHS=${STRENGTH_WIDTHS:-50}
WD_COEFS=${WD_COEFS-1e-4 1e-3 1e-2}
DROPOUT_RATES=${DROPOUT_RATES-0.1 0.3 0.5}
priors="none"
for c in $WD_COEFS; do priors="$priors weight_decay_$c"; done
for r in $DROPOUT_RATES; do priors="$priors dropout_$r"; done
export OUT=${OUT:-multirun/connect_prior/$(date +%Y-%m-%d_%H-%M-%S)}
export PRIORS=$priors TABLE=0 ALIGNED=${ALIGNED:-ot_exact}
unset WIDTHS
case "${SCALE:-embedded}" in
  full)
    hidden=$(for w in $STRENGTH_WIDTHS; do printf '[%s],' "$w"; done)
    export EXTRA_TRAIN="model.hidden=${hidden%,} ${EXTRA_TRAIN:-}"
    unset ALIGNED ;;   # the paper's connect_paths config holds the alignments
  tiny) export TINY_WIDTHS=${TINY_WIDTHS:-8} TINY_PRIORS=$priors ;;
  *)    export WIDTHS=$STRENGTH_WIDTHS ;;
esac
exec bash sweeps/connect_width.sh "$@"
