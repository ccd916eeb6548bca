#!/usr/bin/env bash
# Does chapter 3's after-training entropy repeat bit for bit when every step runs in a fresh process, as the
# pipeline's jobs do? Per run (DATASET:METHOD:FORM:LAM:SEED, default two SNLI runs, side by side): the untrained
# model's entropies alone; then twice "train from scratch, then measure" (one job of the pipeline); then twice
# "measure" on those weights; then once "measure" with the untrained model's entropies computed in the process.
#
#   bash benchmarks/measure_in_fresh_processes.sh [RUN ...]   # records under $OUT (or build/fresh); PROFILE=smoke on a CPU
set -uo pipefail
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src PYTHONUNBUFFERED=1 TQDM_DISABLE=1 COMPNB_DETERMINISTIC=1
out=${OUT:-build/fresh}; mkdir -p $out
runs=("$@"); [ ${#runs[@]} -gt 0 ] || runs=(snli:mask:inverse:1.0:2 snli:gradient:inverse:1.0:2)
one() { python benchmarks/saliency_repeats.py $1 --profile ${PROFILE:-full} --json $out/${1//[:.]/_}-$2.json "${@:3}" > $out/${1//[:.]/_}-$2.log 2>&1; }
for run in ${runs[@]}; do
  ( one $run 0-untrained --once untrained
    one $run 1-train --once cached --retrain; one $run 2-train --once cached --retrain
    one $run 3-measure --once cached; one $run 4-measure --once cached
    one $run 5-computed --once computed ) &
done
wait
for f in $out/*.json; do echo "$(basename $f): $(cat $f)"; done
