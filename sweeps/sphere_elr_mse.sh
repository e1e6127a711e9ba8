#!/usr/bin/env bash
# Study S with MSE (last layer norm 1.5): the elr sweep on the whole training set and on a 10% subset.
#   sweeps/sphere_elr_mse.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_elr_mse/$STAMP}
ELRS=${ELRS:-1e-3,3e-3,1e-2,3e-2,1e-1}
STEPS=${STEPS:-800}
for FRACTION in 1.0 0.1; do
  $PY train.py -m experiment=sphere_ce loss=mse "elr=$ELRS" data.fraction=$FRACTION trainer.max_steps=$STEPS \
    ${FULL[@]+"${FULL[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT/fraction_$FRACTION" "$@"
  $LOSSLAND collect "$OUT/fraction_$FRACTION"
  $LOSSLAND report "$OUT/fraction_$FRACTION"
done
