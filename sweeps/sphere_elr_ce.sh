#!/usr/bin/env bash
# Study S, the elr sweep with cross-entropy: three regimes (phase 1 convergence, 2 chaotic equilibrium,
# 3 destabilized). Embedded: FSI ConvNet width 0.125 on mnist5k, CPU, STEPS=800 (25 epochs of 2,000 digits at
# batch 64). Full: CIFAR-10, width 1, GPU, 1000 epochs at batch 128 as in the paper (391 steps per epoch:
# 391,000 steps; EPOCHS= changes it), phase metrics once per epoch (the seed's cosines are between adjacent
# epochs) and the seed's elr grid.
#   sweeps/sphere_elr_ce.sh                    # then open <OUT>/report/index.html
#   SCALE=full DATA_ROOT=~/data/cifar10 sweeps/sphere_elr_ce.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_elr_ce/$STAMP}
if [ "$SCALE" = full ]; then
  ELRS=${ELRS:-1e-4,3e-4,7e-4,1e-3,3e-3,1e-2,2e-2,5e-2,1e-1}
  LENGTH=(trainer.max_steps=-1 "trainer.max_epochs=${EPOCHS:-1000}" metrics.every_n_steps=391)
else
  ELRS=${ELRS:-3e-3,1e-2,3e-2,1e-1}
  LENGTH=("trainer.max_steps=${STEPS:-800}")
fi
$PY train.py -m experiment=sphere_ce loss=ce "elr=$ELRS" "${LENGTH[@]}" ${FULL[@]+"${FULL[@]}"} \
  trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT" "$@"
$LOSSLAND collect "$OUT"
$LOSSLAND report "$OUT"
