#!/usr/bin/env bash
# Study S, linear interpolation inside phase 1 (seed 003, Fig 3): models trained from one init at different elrs of
# the not-converged sub-phase (small elrs: training errors left at the end) and of the converged one (zero
# training errors), connected pairwise within each group by the linear path (1-a)A + aB, BN statistics recomputed
# at every point, with train loss/error, test error and GM along the path. The seed: not-converged models share one
# linearly connected region, converged ones at different elrs are not linearly connected. `lossland interpolate`
# writes the figure and table ($OUT/interpolation/); the sub-phase of each model is measured, not assumed.
#
#   sweeps/sphere_interpolate.sh                    # embedded: mnist5k on the CPU
#   SCALE=full DATA_ROOT=<cifar dir> sweeps/sphere_interpolate.sh
#
# Full: experiment=paper/sphere_ce at elr 8e-7, 1e-5, 1e-4 (not converged) and 3e-4, 7e-4 (converged; settings.yaml:
# sphere_interpolate_runs), paths connect.py +experiment=paper/sphere_linear_path.
# Environment: OUT, CONVERGED_ERRORS (10: a model with at most this many wrong training examples is "converged";
# the seed's definition is 0, its stated sub-phase boundary 10-15 examples; at 800 embedded steps 2e-3 leaves 4),
# EXTRA_CONNECT (more connect.py overrides); embedded: STEPS, NOT_CONVERGED_ELRS ("1e-4,3e-4"), CONVERGED_ELRS
# ("2e-3,3e-3"), NUM_POINTS.
# Layout: $OUT/runs/<i>/, $OUT/connect/<group>/<j>/connect.json (every pair within a group).
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/sphere_interpolate/$STAMP}
full_scale_refuses STEPS NOT_CONVERGED_ELRS CONVERGED_ELRS NUM_POINTS
read -r -a CONNECT_EXTRA <<< "${EXTRA_CONNECT:-}"
if [ "$SCALE" = full ]; then
  NOT_CONVERGED_ELRS=8e-7,1e-5,1e-4
  CONVERGED_ELRS=3e-4,7e-4
  $PY train.py -m experiment=paper/sphere_ce "elr=$NOT_CONVERGED_ELRS,$CONVERGED_ELRS" "data.root=$DATA_ROOT" \
    trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT/runs" "$@"
  PATH_ARGS=(+experiment=paper/sphere_linear_path)
else
  if [ "$SCALE" = tiny ]; then STEPS=${STEPS:-4}; NUM_POINTS=${NUM_POINTS:-3}; fi
  STEPS=${STEPS:-800}
  NUM_POINTS=${NUM_POINTS:-11}
  NOT_CONVERGED_ELRS=${NOT_CONVERGED_ELRS:-1e-4,3e-4}
  CONVERGED_ELRS=${CONVERGED_ELRS:-2e-3,3e-3}
  $PY train.py -m experiment=sphere_ce "elr=$NOT_CONVERGED_ELRS,$CONVERGED_ELRS" trainer.max_steps=$STEPS \
    ${TINY[@]+"${TINY[@]}"} trainer.enable_progress_bar=false "hydra.sweep.dir=$OUT/runs" "$@"
  PATH_ARGS=(align=none path=linear gm=true "num_points=$NUM_POINTS")
fi
n1=$(tr ',' '\n' <<< "$NOT_CONVERGED_ELRS" | wc -l)
n2=$(tr ',' '\n' <<< "$CONVERGED_ELRS" | wc -l)
pairs() {  # every pair (first, second) of job numbers first..last: "a=DIR b=DIR" lines
  for ((p = $1; p <= $2; p++)); do for ((q = p + 1; q <= $2; q++)); do echo "$p $q"; done; done
}
for group in not_converged converged; do
  if [ $group = not_converged ]; then lo=0; hi=$((n1 - 1)); else lo=$n1; hi=$((n1 + n2 - 1)); fi
  j=0
  while read -r p q; do
    $PY connect.py a="$OUT/runs/$p" b="$OUT/runs/$q" "${PATH_ARGS[@]}" ${CONNECT_EXTRA[@]+"${CONNECT_EXTRA[@]}"} \
      "hydra.run.dir=$OUT/connect/$group/$j"
    j=$((j + 1))
  done < <(pairs $lo $hi)
done
$LOSSLAND interpolate "$OUT" --converged-errors "${CONVERGED_ERRORS:-10}"
