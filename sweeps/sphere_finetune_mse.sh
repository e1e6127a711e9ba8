#!/usr/bin/env bash
# Study S, fine-tuning with MSE (seed 003, §4, Fig 21): sweeps/sphere_finetune.sh with LOSS=mse (the mean over
# classes, lossland's default; the last layer at norm 1.5) — pretrain at phase-1 MSE elrs, lower each elr, and the
# original-to-fine-tuned linear paths. Every knob of sphere_finetune.sh applies (STEPS, FT_STEPS, PHASE1_ELR,
# PHASE1_FACTORS, PHASE2_ELRS, PHASE2_FACTORS, NUM_POINTS); `lossland paper sphere` gives the embedded ones.
# Embedded only: the seed names no elrs for Fig 21, so there is no paper-scale config; SCALE=full runs nothing.
#   PHASE1_ELR=3e-2 PHASE1_FACTORS=0.1 PHASE2_ELRS=0.1 PHASE2_FACTORS=0.1 sweeps/sphere_finetune_mse.sh logger=csv
source "$(dirname "$0")/_common.sh"
if [ "$SCALE" = full ]; then
  echo "sphere_finetune_mse: embedded only (the seed gives no elr grid for Fig 21, so no paper-scale config); skipped"
  exit 0
fi
export OUT=${OUT:-multirun/sphere_finetune_mse/$STAMP}
LOSS=mse exec bash sweeps/sphere_finetune.sh "$@"
