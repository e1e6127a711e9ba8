#!/usr/bin/env bash
# Study O (docs/optim_lab.md): the optimizer lab's figures, tables and animations. CPU, ~1 minute.
#   sweeps/optim_lab.sh                 # into multirun/optim_lab/<timestamp>/
#   DOCS=1 sweeps/optim_lab.sh          # also copy the figures to docs/figures/optim_*.png
#   SCALE=tiny sweeps/optim_lab.sh      # seconds: short trajectories, few escape runs, shallow nets (CI)
# Environment: OUT, PYTHON, DOCS, SCALE (embedded | tiny), EXTRA (more overrides for every lab.py call).
# Layout: $OUT/trajectories/<function>/ (trajectories.png/.json/.gif), $OUT/escape/<function>/ (escape.png/.csv/.md),
# $OUT/vanishing/ (vanishing.png/.csv/.json), $OUT/timing.txt. The Keskar study is sweeps/keskar_sb_lb.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
OUT=${OUT:-multirun/optim_lab/$(date +%Y-%m-%d_%H-%M-%S)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
case "${SCALE:-embedded}" in
  embedded|full) TRAJ=(); ESC=(); VAN=() ;;
  tiny) TRAJ=(task.steps=20 task.animate=false); ESC=(task.runs=20 task.max_steps=50 "task.sigmas=[0.1]" "task.lrs=[0.1]")
        VAN=("task.depths=[2,3]" "task.activations=[relu]" task.steps=2 task.data_args.train_size=128
             task.data_args.test_size=64) ;;
  *) echo "SCALE must be embedded or tiny, not $SCALE" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
start=$(date +%s)
for f in saddle monkey_saddle cubic ravine rosenbrock expression; do
  # shellcheck disable=SC2086
  "$PY" lab.py "function=$f" task=trajectories task.animate=true progress=false ${TRAJ[@]+"${TRAJ[@]}"} ${EXTRA:-} \
    "out_dir=$OUT/trajectories/$f"
done
for f in saddle monkey_saddle; do
  # shellcheck disable=SC2086
  "$PY" lab.py "function=$f" task=escape progress=false ${ESC[@]+"${ESC[@]}"} ${EXTRA:-} "out_dir=$OUT/escape/$f"
done
# shellcheck disable=SC2086
"$PY" lab.py task=vanishing progress=false ${VAN[@]+"${VAN[@]}"} ${EXTRA:-} "out_dir=$OUT/vanishing"
end=$(date +%s)
echo "wall: $((end - start)) s (OMP_NUM_THREADS=$OMP_NUM_THREADS)" | tee "$OUT/timing.txt"
if [ "${DOCS:-0}" = 1 ]; then
  for f in saddle monkey_saddle cubic ravine rosenbrock expression; do
    cp "$OUT/trajectories/$f/trajectories.png" "docs/figures/optim_traj_$f.png"
  done
  cp "$OUT/trajectories/monkey_saddle/trajectories.gif" docs/figures/optim_traj_monkey_saddle.gif 2>/dev/null || true
  for f in saddle monkey_saddle; do cp "$OUT/escape/$f/escape.png" "docs/figures/optim_escape_$f.png"; done
  cp "$OUT/vanishing/vanishing.png" docs/figures/optim_vanishing.png
  echo "figures copied to docs/figures/optim_*"
fi
