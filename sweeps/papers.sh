#!/usr/bin/env bash
# Every study's embedded results, one `lossland paper <study>` command each, one after another, each with the
# arguments its docs give (docs/paper.md#all-five-studies); prints and writes each study's wall time. Then, with
# DOCS=1, copies each comparison into docs/results/<study>/ (`lossland paper <study> --from`) and renders the docs
# blocks (`lossland paper-docs`). Each study must finish in ≤ 20 minutes on 2 CPU cores.
#   sweeps/papers.sh                                 # all five into multirun/papers/<stamp>
#   STUDIES="sphere optim" sweeps/papers.sh          # some of them
#   DOCS=1 OUT=multirun/papers/run sweeps/papers.sh  # ... and regenerate docs/results and the docs' blocks
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-multirun/papers/$STAMP}
STUDIES=${STUDIES:-sphere connect exp_neuron nas optim}
DOCS=${DOCS:-0}
args_of() {  # the study's documented command line (docs/<study>.md, "One command")
  case "$1" in
    sphere) echo "hydra/launcher=joblib logger=csv" ;;
    exp_neuron) echo "--jobs 2" ;;
    nas|optim) echo "logger=csv" ;;
    connect) echo "" ;;
    *) echo "unknown study $1 (sphere connect exp_neuron nas optim)" >&2; return 2 ;;
  esac
}
mkdir -p "$OUT"
for study in $STUDIES; do
  args=$(args_of "$study")
  start=$(date +%s)
  # shellcheck disable=SC2086  # $args is a word list on purpose
  $LOSSLAND paper "$study" $args --out "$OUT/$study"
  secs=$(( $(date +%s) - start ))
  printf '%s\t%d s\t(%d min %d s)\tlossland paper %s %s\n' "$study" "$secs" $((secs / 60)) $((secs % 60)) \
    "$study" "$args" | tee -a "$OUT/times.tsv"
  if [ "$DOCS" = 1 ]; then
    rm -rf "docs/results/$study"
    $LOSSLAND paper "$study" --from "$OUT/$study" --out "docs/results/$study"
  fi
done
if [ "$DOCS" = 1 ]; then $LOSSLAND paper-docs; fi
echo "wall times: $OUT/times.tsv"
