#!/usr/bin/env bash
# Study S, the elr sweep with cross-entropy: three regimes (phase 1 convergence, 2 chaotic equilibrium,
# 3 destabilized). Embedded: FSI ConvNet width 0.125 on mnist5k, CPU. Full: CIFAR-10, width 1, GPU,
# 1000 epochs as in the paper (set STEPS).
#   sweeps/sphere_elr_ce.sh                    # then open <OUT>/report/index.html
#   SCALE=full DATA_ROOT=~/data/cifar10 STEPS=200000 sweeps/sphere_elr_ce.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_elr_ce/$STAMP}
ELRS=${ELRS:-3e-3,1e-2,3e-2,1e-1}
STEPS=${STEPS:-800}
$PY train.py -m experiment=sphere_ce loss=ce "elr=$ELRS" trainer.max_steps=$STEPS ${FULL[@]+"${FULL[@]}"} \
  trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT" "$@"
$LOSSLAND collect "$OUT"
$LOSSLAND report "$OUT"
