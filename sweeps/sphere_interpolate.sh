#!/usr/bin/env bash
# Study S, linear interpolation between models trained at different elr, BN statistics recomputed at every point.
#   sweeps/sphere_interpolate.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_interpolate/$STAMP}
STEPS=${STEPS:-800}
ELRS=${ELRS:-1e-3,1e-2}
$PY train.py -m experiment=sphere_ce "elr=$ELRS" trainer.max_steps=$STEPS ${FULL[@]+"${FULL[@]}"} \
  trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT/runs" "$@"
$PY connect.py a="$OUT/runs/0" b="$OUT/runs/1" align=none path=linear "hydra.run.dir=$OUT/interpolation"
