#!/usr/bin/env bash
# Study S with MSE (last layer norm 1.5; seed 003, section 4, Figs 16-21): the elr sweep on the whole training set
# and on a 10% subset. The seed trains every MSE model 6000 iterations and its grid reaches phase 3 at elr = 0.5.
# Embedded: STEPS (default 6000 steps), ELRS, FRACTIONS, CURVATURE (1); curvature (tr F, top Hessian eigenvalue) at every 4th
# phase-metric point on 128 examples. Full: experiment=paper/sphere_mse (fraction_1.0) and paper/sphere_mse_subset
# (fraction_0.1): CIFAR-10, 6000 epochs (docs/sphere.md#the-papers-scale). Ends with `lossland sphere-figures` per
# fraction. SUM_ELRS (embedded): the same sweep on the whole set with MSE summed over classes (the seed's eq. 4;
# the default divides by the classes, as the authors' code does: docs/sphere.md#mse-normalization) into
# $OUT/sum_over_classes/fraction_1.0.
#   sweeps/sphere_elr_mse.sh                   # then <OUT>/fraction_1.0/sphere_figures/, report/
#   STEPS=500 sweeps/sphere_elr_mse.sh logger=csv   # the embedded figures of docs/sphere.md
#   SCALE=full DATA_ROOT=~/data/cifar10 sweeps/sphere_elr_mse.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_elr_mse/$STAMP}
full_scale_refuses ELRS STEPS FRACTIONS SUM_ELRS CURVATURE
ELRS=${ELRS:-$( [ "$SCALE" = tiny ] && echo 1e-3,5e-1 || echo 1e-4,1e-3,3e-3,1e-2,3e-2,1e-1,5e-1 )}
STEPS=${STEPS:-$( [ "$SCALE" = tiny ] && echo 4 || echo 6000 )}
FRACTIONS=${FRACTIONS:-$( [ "$SCALE" = tiny ] && echo "1.0 0.25" || echo "1.0 0.1" )}
CURV=()
if [ "${CURVATURE:-1}" = 1 ]; then  # CURVATURE=0: no curvature metrics
  CURV=(metrics.curvature.enabled=true metrics.curvature.every=4 metrics.curvature.examples=128)
fi
for FRACTION in $FRACTIONS; do
  if [ "$SCALE" = full ]; then
    EXP=paper/sphere_mse; [ "$FRACTION" = 1.0 ] || EXP=paper/sphere_mse_subset
    $PY train.py -m "experiment=$EXP" "data.root=$DATA_ROOT" trainer.enable_progress_bar=false \
      "hydra.sweep.dir=$OUT/fraction_$FRACTION" "$@"
  else
    $PY train.py -m experiment=sphere_ce loss=mse "elr=$ELRS" data.fraction=$FRACTION trainer.max_steps=$STEPS \
      ${CURV[@]+"${CURV[@]}"} ${TINY[@]+"${TINY[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT/fraction_$FRACTION" "$@"
  fi
  $LOSSLAND collect "$OUT/fraction_$FRACTION"
  $LOSSLAND report --no-wandb "$OUT/fraction_$FRACTION"
  $LOSSLAND sphere-figures "$OUT/fraction_$FRACTION"
done
if [ -n "${SUM_ELRS:-}" ]; then
  D="$OUT/sum_over_classes/fraction_1.0"
  $PY train.py -m experiment=sphere_ce loss=mse loss.per_class_mean=false "elr=$SUM_ELRS" data.fraction=1.0 \
    trainer.max_steps=$STEPS ${CURV[@]+"${CURV[@]}"} ${TINY[@]+"${TINY[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$D" "$@"
  $LOSSLAND collect "$D"
  $LOSSLAND sphere-figures "$D"
fi
