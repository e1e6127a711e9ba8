#!/usr/bin/env bash
# Study D (docs/nas.md, seed 002): the DARTS-style search with the three Dirichlet priors on the structure weights
# (weak, annealed, strong), one `lossland nas` job per prior and seed (embedded: SEEDS=0,1,2), then the study report
# (structure dynamics per prior, edge entropy, weight / input noise robustness of the lowest seed; the findings of
# every job) in $OUT/report.
#   sweeps/nas.sh                                   # embedded: digits, 2 cells, CPU (docs/nas.md)
#   SCALE=full DATA_ROOT=<dir with cifar-10-batches-py> sweeps/nas.sh   # lossland nas +experiment=paper/nas_search
#   SCALE=tiny sweeps/nas.sh                        # seconds (CI): 1 epoch, 1 noise draw; not a result
# Extra arguments go to lossland nas (alias nas.py) (e.g. device=cuda). SEEDS (embedded): the seeds, default 0,1,2.
source "$(dirname "$0")/_common.sh"
full_scale_refuses SEEDS
OUT=${OUT:-multirun/nas/$STAMP}
case "$SCALE" in
  full) ARGS=(+experiment=paper/nas_search "data.root=$DATA_ROOT") ;;
  tiny) ARGS=(prior=weak,annealed,strong search.epochs=2 search.log_every=2 discrete.epochs=1 robustness.draws=1
              "robustness.weights_sigmas=[0.0,0.1]" "robustness.inputs_sigmas=[0.0,1.0]" logger=csv) ;;
  *) ARGS=("seed=${SEEDS:-0,1,2}" prior=weak,annealed,strong) ;;  # seed outermost: whole seeds finish first
esac
$PY nas.py -m "${ARGS[@]}" "hydra.sweep.dir=$OUT" "$@"
$LOSSLAND nas-report "$OUT" --out "$OUT/report"
