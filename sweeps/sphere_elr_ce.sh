#!/usr/bin/env bash
# Study S, the elr sweep with cross-entropy: three regimes (phase 1 convergence, 2 chaotic equilibrium,
# 3 destabilized). Embedded: FSI ConvNet width 0.125 on mnist5k, CPU, STEPS=800 (25 epochs of 2,000 digits at
# batch 64), ELRS. Full: experiment=paper/sphere_ce (CIFAR-10, width 1, the seed's 14-elr grid, 1000 epochs =
# 390,000 steps, phase metrics once per epoch; docs/sphere.md#the-papers-scale). CURVATURE=1 (embedded): tr F and
# the top Hessian eigenvalue at every 4th phase-metric point on 128 examples. Ends with `lossland sphere-figures`.
#   sweeps/sphere_elr_ce.sh                    # then open <OUT>/report/index.html
#   SCALE=full DATA_ROOT=~/data/cifar10 sweeps/sphere_elr_ce.sh [hydra/launcher=submitit_slurm ...]
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_elr_ce/$STAMP}
if [ "$SCALE" = full ]; then
  full_scale_refuses ELRS STEPS EPOCHS CURVATURE
  $PY train.py -m experiment=paper/sphere_ce "data.root=$DATA_ROOT" trainer.enable_progress_bar=false \
    "hydra.sweep.dir=$OUT" "$@"
else
  ELRS=${ELRS:-3e-3,1e-2,3e-2,1e-1}
  CURV=()
  if [ "${CURVATURE:-0}" = 1 ]; then
    CURV=(metrics.curvature.enabled=true metrics.curvature.every=4 metrics.curvature.examples=128)
  fi
  $PY train.py -m experiment=sphere_ce loss=ce "elr=$ELRS" "trainer.max_steps=${STEPS:-800}" ${CURV[@]+"${CURV[@]}"} \
    ${TINY[@]+"${TINY[@]}"} \
    trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT" "$@"
fi
$LOSSLAND collect "$OUT"
$LOSSLAND report "$OUT"
$LOSSLAND sphere-figures "$OUT"
