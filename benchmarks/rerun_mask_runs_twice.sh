#!/usr/bin/env bash
# Mask-saliency runs twice (trees VA, VB) side by side with COMPNB_DETERMINISTIC=1, beside a process
# that holds $HOG_GIB (default 24) GiB of GPU memory for the first 90 s: with the fixed chunk budget both must give the same bits.
#
#   bash benchmarks/rerun_mask_runs_twice.sh [DATASET:FORM:LAM ...]
#   python benchmarks/compare_reruns.py build/VA build/VB --label "..." --csv results/full/paper-scale/reruns.csv
#
# Chapter 3's seed-0 mask-saliency runs (full profile) named by the arguments (default: four of them), all at
# once. With $OUT set, the runs' records come back as $OUT/verify.tgz.
set -uo pipefail
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src PYTHONUNBUFFERED=1 TQDM_DISABLE=1 COMPNB_DETERMINISTIC=1 OMP_NUM_THREADS=2
source benchmarks/rerun_trees.sh
specs=("$@"); [ ${#specs[@]} -gt 0 ] || specs=(sst2:subtract:0.5 sst2:subtract:1.0 snli:subtract:0.5 snli:exp_subtract:0.5)
python3 -c "import torch,time; x=torch.empty(${HOG_GIB:-24}*2**30, dtype=torch.uint8, device='cuda'); time.sleep(3600)" &
hog=$!
sleep 5
for t in VA VB; do
  d=build/$t; new_tree $d
  for spec in ${specs[@]}; do
    IFS=: read -r ds form lam <<< "$spec"
    ( cd $d; timeout 540 python -c "
from compnb.chapters import competency as c; from compnb import training
print(training.train(c.config('full', '$ds', 0, {'method': 'mask', 'form': '$form', 'lam': $lam})))" > ../$t-$ds-$form-$lam.log 2>&1 ) &
    pids="${pids:-} $!"
  done
done
sleep 90; kill $hog  # free memory changes mid-run
wait $pids
tail -n 2 build/V*.log
[ -n "${OUT:-}" ] && (cd build && { find VA/results VB/results -name 'metrics.json' -o -name 'val_probs.npy' \
    -o -name 'config.json' -o -name run.json; ls V*.log; } | tar czf $OUT/verify.tgz -T -)
