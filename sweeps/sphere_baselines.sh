#!/usr/bin/env bash
# Study S, at a phase-3 elr: sphere SGD vs a random walk with the gradient's step norm vs gradient ascent.
#   sweeps/sphere_baselines.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_baselines/$STAMP}
STEPS=${STEPS:-800}
ELR=${ELR:-1e-1}
$PY train.py -m experiment=sphere_ce "elr=$ELR" optimizer.direction=gradient,random,ascent trainer.max_steps=$STEPS \
  ${FULL[@]+"${FULL[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT" "$@"
$LOSSLAND collect "$OUT"
