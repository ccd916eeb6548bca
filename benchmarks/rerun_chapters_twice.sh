#!/usr/bin/env bash
# Two from-scratch full-profile reruns (trees build/rerun-A and build/rerun-B) of chapters 2-4 with
# COMPNB_DETERMINISTIC=1, side by side on one GPU: in each tree chapters 4, 2 and 3 run at once (3, 2 and 7
# worker processes), so the two trees also differ in what else holds GPU memory at any moment.
#
#   bash benchmarks/rerun_chapters_twice.sh SECONDS    # stops every pipeline after SECONDS; run again to go on
#   python benchmarks/compare_reruns.py build/rerun-A build/rerun-B --label "..." --csv results/full/paper-scale/reruns.csv
#
# Resumable: each tree keeps its finished runs (a stopped run starts again). Each tree's results (weights,
# checkpoints and per-word tables left out) are packed into $OUT/A.tgz and $OUT/B.tgz when OUT is set.
# Data and backbone resolve as usual (COMPNB_DATA_DIR, COMPNB_MODELS_DIR).
set -uo pipefail
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src PYTHONUNBUFFERED=1 TQDM_DISABLE=1 COMPNB_DETERMINISTIC=1
source benchmarks/rerun_trees.sh
for t in A B; do
  d=build/rerun-$t; new_tree $d
  ( cd $d
    for job in "adversarial_eval --workers 3" "baseline --workers 2" "competency --workers 7"; do
      name=${job%% *}
      ( timeout $1 python -m compnb.chapters.$job --profile full > ../$t-$name.log 2>&1; echo "rc $? $(date +%T)" >> ../$t-$name.log ) &
    done; wait ) &
done
wait
for t in A B; do
  tail -n 3 build/$t-*.log
  [ -n "${OUT:-}" ] && (cd build && { results_files rerun-$t; ls $t-*.log; } | tar czf $OUT/$t.tgz -T -)
done
