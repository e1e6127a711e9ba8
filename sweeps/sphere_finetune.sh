#!/usr/bin/env bash
# Study S, fine-tuning: train a phase-1 model (small elr) and a phase-2 model (medium elr), then continue each
# from its final weights (and its data-order stream) with elr lowered x2 and x10, and raised x10.
#   sweeps/sphere_finetune.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_finetune/$STAMP}
STEPS=${STEPS:-800}
PHASE1_ELR=${PHASE1_ELR:-1e-3}
PHASE2_ELR=${PHASE2_ELR:-1e-2}
$PY train.py -m experiment=sphere_ce "elr=$PHASE1_ELR,$PHASE2_ELR" trainer.max_steps=$STEPS ${FULL[@]+"${FULL[@]}"} \
  trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT/pretrain" "$@"
i=0
for BASE in $PHASE1_ELR $PHASE2_ELR; do
  NEW=$($PY -c "b=float('$BASE'); print(','.join(f'{v:g}' for v in (b/2, b/10, b*10)))")
  $PY train.py -m experiment=sphere_ce "elr=$NEW" "init_from=$OUT/pretrain/$i" trainer.max_steps=$STEPS \
    ${FULL[@]+"${FULL[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT/from_elr_$BASE" "$@"
  $LOSSLAND collect "$OUT/from_elr_$BASE"
  i=$((i + 1))
done
$LOSSLAND collect "$OUT"
