#!/usr/bin/env bash
# Chapter 3's confirmation stage (seeds 1-3: 42 runs at the full profile) twice from scratch (trees
# build/rerun-CA and build/rerun-CB) with COMPNB_DETERMINISTIC=1, side by side on one GPU.
#
#   bash benchmarks/rerun_confirmations_twice.sh SECONDS   # stops both pipelines after SECONDS; run again to go on
#   python benchmarks/compare_reruns.py build/rerun-CA build/rerun-CB --label "..." --csv results/full/paper-scale/reruns.csv
#
# Each tree starts from a copy of the committed selection-seed runs (their records and scores, no weights): the
# pipeline finds them measured, does not retrain them, and confirms the λ they chose, so both trees train the
# committed plan's 42 confirmation runs (`benchmarks/rerun_chapters_twice.sh` covers the selection stage).
# Resumable like that script. With OUT set, each tree's confirmation runs and chapter tables (weights and
# checkpoints left out, the copied selection runs too) come back as $OUT/CA.tgz and $OUT/CB.tgz.
set -uo pipefail
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src PYTHONUNBUFFERED=1 TQDM_DISABLE=1 COMPNB_DETERMINISTIC=1
source benchmarks/rerun_trees.sh
mkdir -p build
python3 -c "
from compnb.chapters import competency; from compnb import run_cache
print('\n'.join(run_cache.run_dir(c).name for c in competency.plan('full')[0]))" > build/selection-runs.txt || exit 1
for t in CA CB; do
  d=build/rerun-$t; new_tree $d; mkdir -p $d/results/full/runs
  while read -r run; do [ -e $d/results/full/runs/$run ] || cp -r results/full/runs/$run $d/results/full/runs/; done \
      < build/selection-runs.txt
  ( cd $d; timeout $1 python -m compnb.chapters.competency --workers 8 --profile full > ../$t.log 2>&1
    echo "rc $? $(date +%T)" >> ../$t.log ) &
done
wait
for t in CA CB; do
  tail -n 3 build/$t.log
  [ -n "${OUT:-}" ] && (cd build && { results_files rerun-$t | grep -v -F -f selection-runs.txt; ls $t.log; } \
      | tar czf $OUT/$t.tgz -T -)
done
