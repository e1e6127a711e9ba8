#!/usr/bin/env bash
# Study S, piecewise-linear elr schedule from a trained phase-2 model (seed 003, Figs 13-14: "зафиксируем стартовый
# elr = 1e-2 и запустим дообучение с кусочно-линейным расписанием"): a model pretrained at the phase-2 elr
# START_ELR is fine-tuned (its weights and data order, `init_from`, as sweeps/sphere_finetune.sh does) with elr held
# at START_ELR until step START, then linear down to END_ELR over LENGTH steps; beside them, the from-scratch run
# at END_ELR (the seed: the fastest change gives "the trajectory of the model at that elr without pretraining").
# The seed: the slower the decrease, the closer the model comes to the widest phase-1 optimum and the lower its
# test error. Fine-tunes record elr (the start) and elr_final; the report plots against schedule.transition_length.
# Embedded: STEPS (pretrain and from-scratch steps), FT_STEPS, START_ELR (1e-2), END_ELR (1e-4: the seed goes
# 1e-2 -> 1e-5, three decades below a phase-1 bound of 7e-4; our phase-1 bound is ~3e-3 and a fine-tune is 200
# steps, docs/sphere.md), START (0: the pretrain is the phase-2 part), LENGTHS. Full: experiment=paper/sphere_schedule
# (CIFAR-10, 1000 epochs from scratch, the transition after 10 epochs over 1 step, 10, 100, 500 epochs;
# docs/sphere.md#the-papers-scale).
# Layout (embedded): $OUT/pretrain/0/, $OUT/from_0/<j>/ (the scheduled fine-tunes), $OUT/scratch/0/.
#   sweeps/sphere_schedule.sh                       # then open <OUT>/from_0/report/index.html
#   SCALE=full DATA_ROOT=~/data/cifar10 sweeps/sphere_schedule.sh
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_schedule/$STAMP}
if [ "$SCALE" = full ]; then
  full_scale_refuses STEPS FT_STEPS START_ELR END_ELR START LENGTHS
  $PY train.py -m experiment=paper/sphere_schedule "data.root=$DATA_ROOT" trainer.enable_progress_bar=false \
    "hydra.sweep.dir=$OUT" "$@"
  $LOSSLAND collect "$OUT"
  $LOSSLAND report "$OUT"
  exit 0
fi
if [ "$SCALE" = tiny ]; then STEPS=${STEPS:-4}; LENGTHS=${LENGTHS:-1,2}; fi
STEPS=${STEPS:-800}
FT_STEPS=${FT_STEPS:-$((STEPS / 2))}
START_ELR=${START_ELR:-1e-2}
END_ELR=${END_ELR:-1e-4}
START=${START:-0}
LENGTHS=${LENGTHS:-1,50,100,200}
COMMON=(experiment=sphere_ce ${TINY[@]+"${TINY[@]}"} trainer.enable_progress_bar=false)
$PY train.py -m "${COMMON[@]}" "elr=$START_ELR" trainer.max_steps=$STEPS "hydra.sweep.dir=$OUT/pretrain" "$@"
$PY train.py -m "${COMMON[@]}" "init_from=$OUT/pretrain/0" schedule=linear "schedule.start=$START_ELR" \
  "schedule.end=$END_ELR" "schedule.transition_start=$START" "schedule.transition_length=$LENGTHS" \
  trainer.max_steps=$FT_STEPS "hydra.sweep.dir=$OUT/from_0" "$@"
$PY train.py -m "${COMMON[@]}" "elr=$END_ELR" trainer.max_steps=$STEPS "hydra.sweep.dir=$OUT/scratch" "$@"
$LOSSLAND collect "$OUT/from_0"
$LOSSLAND report "$OUT/from_0"
