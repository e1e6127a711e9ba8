#!/usr/bin/env bash
# Study S, piecewise-linear elr schedule from 1e-2 down to 1e-5 with several transition lengths.
#   sweeps/sphere_schedule.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_schedule/$STAMP}
STEPS=${STEPS:-800}
LENGTHS=${LENGTHS:-1,200,400,700}
$PY train.py -m experiment=sphere_ce schedule=linear schedule.start=1e-2 schedule.end=1e-5 \
  schedule.transition_start=100 "schedule.transition_length=$LENGTHS" trainer.max_steps=$STEPS \
  ${FULL[@]+"${FULL[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT" "$@"
$LOSSLAND collect "$OUT"
