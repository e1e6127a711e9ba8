#!/usr/bin/env bash
# Study S, piecewise-linear elr schedule from 1e-2 down to 1e-5 with several transition lengths (seed 003,
# Figs 13-14): elr 1e-2 until step START, then linear to 1e-5 over LENGTH steps. The report plots against
# schedule.transition_length (the key the sweep varies); the runs record elr (start) and elr_final.
# Embedded: STEPS, START, LENGTHS. Full: experiment=paper/sphere_schedule (CIFAR-10, 1000 epochs, the transition
# after 10 epochs over 1 step, 10, 100, 500 epochs; docs/sphere.md#the-papers-scale).
#   sweeps/sphere_schedule.sh                       # then open <OUT>/report/index.html
#   SCALE=full DATA_ROOT=~/data/cifar10 sweeps/sphere_schedule.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_schedule/$STAMP}
if [ "$SCALE" = full ]; then
  full_scale_refuses STEPS START LENGTHS
  $PY train.py -m experiment=paper/sphere_schedule "data.root=$DATA_ROOT" trainer.enable_progress_bar=false \
    "hydra.sweep.dir=$OUT" "$@"
else
  STEPS=${STEPS:-800}
  if [ "$SCALE" = tiny ]; then LENGTHS=${LENGTHS:-1,4}; START=${START:-2}; fi
  LENGTHS=${LENGTHS:-1,200,400,700}
  START=${START:-100}
  $PY train.py -m experiment=sphere_ce schedule=linear schedule.start=1e-2 schedule.end=1e-5 \
    "schedule.transition_start=$START" "schedule.transition_length=$LENGTHS" trainer.max_steps=$STEPS \
    ${TINY[@]+"${TINY[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT" "$@"
fi
$LOSSLAND collect "$OUT"
$LOSSLAND report "$OUT"
