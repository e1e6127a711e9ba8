#!/usr/bin/env bash
# Study S, at a phase-3 elr (seed 003, Fig 15): sphere SGD vs a random walk with the gradient's step norm vs
# gradient ascent, overlaid in one figure (train loss / error, GM, consecutive cosine, retraction error 1 - r).
# Embedded: STEPS, ELR. Full: experiment=paper/sphere_baselines (CIFAR-10, elr 0.1, 1000 epochs).
#   sweeps/sphere_baselines.sh                 # then <OUT>/sphere_figures/sphere_baselines.png
#   SCALE=full DATA_ROOT=~/data/cifar10 sweeps/sphere_baselines.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_baselines/$STAMP}
if [ "$SCALE" = full ]; then
  full_scale_refuses STEPS ELR
  $PY train.py -m experiment=paper/sphere_baselines "data.root=$DATA_ROOT" trainer.enable_progress_bar=false \
    "hydra.sweep.dir=$OUT" "$@"
else
  STEPS=${STEPS:-$( [ "$SCALE" = tiny ] && echo 4 || echo 800 )}
  ELR=${ELR:-1e-1}
  $PY train.py -m experiment=sphere_ce "elr=$ELR" optimizer.direction=gradient,random,ascent trainer.max_steps=$STEPS \
    ${TINY[@]+"${TINY[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT" "$@"
fi
$LOSSLAND collect "$OUT"
$LOSSLAND sphere-figures "$OUT"
