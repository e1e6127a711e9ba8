#!/usr/bin/env bash
# Study S, fine-tuning (seed 003, Figs 4-9, 11, 12): pretrain FSI ConvNets from one init at a phase-1 elr and at
# phase-2 elrs, continue each from its final weights (and its data-order stream, `init_from`) at new elrs, and
# check whether each fine-tuned model stays linearly connected to its original (connect.py, linear path, BN
# recomputed at every point, GM along the path). Then `lossland finetune` joins pretrain and fine-tune
# trajectories on one step axis and writes the figures and the connectivity table ($OUT/finetune/).
#
#   sweeps/sphere_finetune.sh                       # embedded: mnist5k on the CPU
#   SCALE=full DATA_ROOT=<cifar dir> sweeps/sphere_finetune.sh
#
# Factors (the seed's): a phase-1 model is fine-tuned with elr lowered x2 and x10 (Figs 4, 5) and raised a little,
# more, and past phase 1's upper bound (Figs 6-9; the seed starts from elr=1e-4 with the bound at 7e-4);
# phase-2 models are fine-tuned with elr lowered into phase 1 (Figs 11, 12: from a small and a large phase-2
# elr). The embedded defaults map the seed's CIFAR-10 elrs onto this scale's phases (docs/sphere.md: phase 1
# up to ~3e-3, phase 2 around 1e-2, phase 3 from 3e-2). Measured: 5e-3, meant as a small phase-2 elr, is still
# phase 1 at 800 embedded steps (0.3% train error), so at this scale only 1e-2 is a phase-2 pretrain.
# Full: the pretrains are experiment=paper/sphere_ce at elr 1e-4, 1e-3, 1e-2 (1000 epochs), the fine-tunes
# experiment=paper/sphere_finetune_{phase1,phase2_small,phase2_large} (5000 epochs each; their elr grids), the paths
# connect.py +experiment=paper/sphere_linear_path (docs/sphere.md#the-papers-scale).
# Environment (embedded): STEPS (pretrain steps), FT_STEPS (fine-tune steps; the seed: 5000 iterations),
# PHASE1_ELR, PHASE1_FACTORS (multipliers; "0.5 0.1 2 3 10"), PHASE2_ELRS, PHASE2_FACTORS ("0.1 0.01"), NUM_POINTS
# (path), LOSS (mse: the same with MSE, last layer norm 1.5, the mean over classes — the seed's Fig 21;
# sweeps/sphere_finetune_mse.sh); any scale: EXTRA_CONNECT (more connect.py overrides,
# e.g. device=cpu).
# Layout: $OUT/pretrain/<i>/, $OUT/from_<i>/<j>/ (fine-tunes of pretrain i), $OUT/connect/from_<i>/<j>/connect.json.
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_finetune/$STAMP}
full_scale_refuses STEPS FT_STEPS PHASE1_ELR PHASE1_FACTORS PHASE2_ELRS PHASE2_FACTORS NUM_POINTS LOSS
read -r -a CONNECT_EXTRA <<< "${EXTRA_CONNECT:-}"
if [ "$SCALE" = full ]; then
  # pretrain i = 0, 1, 2 at the fine-tune configs' starting elrs (settings.yaml: sphere_finetune_pretrain)
  $PY train.py -m experiment=paper/sphere_ce elr=1e-4,1e-3,1e-2 "data.root=$DATA_ROOT" \
    trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT/pretrain" "$@"
  TUNES=(sphere_finetune_phase1 sphere_finetune_phase2_small sphere_finetune_phase2_large)
  for i in 0 1 2; do
    $PY train.py -m "experiment=paper/${TUNES[$i]}" "init_from=$OUT/pretrain/$i" "data.root=$DATA_ROOT" \
      trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT/from_$i" "$@"
    TUNED=$(ls -d "$OUT/from_$i"/[0-9]* | paste -sd, -)
    $PY connect.py -m +experiment=paper/sphere_linear_path a="$OUT/pretrain/$i" "b=$TUNED" \
      ${CONNECT_EXTRA[@]+"${CONNECT_EXTRA[@]}"} "hydra.sweep.dir=$OUT/connect/from_$i"
  done
  $LOSSLAND finetune "$OUT"
  exit 0
fi
if [ "$SCALE" = tiny ]; then STEPS=${STEPS:-4}; NUM_POINTS=${NUM_POINTS:-3}; fi
STEPS=${STEPS:-800}
FT_STEPS=${FT_STEPS:-$((STEPS / 2))}
NUM_POINTS=${NUM_POINTS:-11}
PHASE1_ELR=${PHASE1_ELR:-1e-3}
PHASE1_FACTORS=${PHASE1_FACTORS:-0.5 0.1 2 3 10}
PHASE2_ELRS=${PHASE2_ELRS-5e-3 1e-2}  # may be empty: one pretrain
PHASE2_FACTORS=${PHASE2_FACTORS:-0.1 0.01}
COMMON=(experiment=sphere_ce ${LOSS:+"loss=$LOSS"} ${TINY[@]+"${TINY[@]}"} trainer.enable_progress_bar=false)
read -r -a BASES <<< "$PHASE1_ELR $PHASE2_ELRS"
$PY train.py -m "${COMMON[@]}" "elr=$(IFS=,; echo "${BASES[*]}")" trainer.max_steps=$STEPS \
  "hydra.sweep.dir=$OUT/pretrain" "$@"
for i in "${!BASES[@]}"; do
  FACTORS=$PHASE2_FACTORS
  [ "$i" = 0 ] && FACTORS=$PHASE1_FACTORS
  NEW=$($PY -c "import sys; b=float(sys.argv[1]); print(','.join(f'{b*float(f):g}' for f in sys.argv[2].split()))" \
        "${BASES[$i]}" "$FACTORS")
  $PY train.py -m "${COMMON[@]}" "elr=$NEW" "init_from=$OUT/pretrain/$i" trainer.max_steps=$FT_STEPS \
    "hydra.sweep.dir=$OUT/from_$i" "$@"
  TUNED=$(ls -d "$OUT/from_$i"/[0-9]* | paste -sd, -)
  $PY connect.py -m a="$OUT/pretrain/$i" "b=$TUNED" align=none path=linear gm=true num_points=$NUM_POINTS \
    ${CONNECT_EXTRA[@]+"${CONNECT_EXTRA[@]}"} "hydra.sweep.dir=$OUT/connect/from_$i"
done
$LOSSLAND finetune "$OUT"
