#!/usr/bin/env bash
# The multi-GPU runs of the appendix "At the papers' scale", on one host with N GPUs (default 2):
#   1. the gradient check and timing of data parallel (DDP) and sharded (FSDP2) steps (benchmarks/bench_sharded.py);
#   2. `compnb train` end to end (competency loss, gradient saliency, MiniLM on 8,192 SST-2 rows, one epoch) on
#      one GPU (batch N × 16), under DDP and under FSDP2 (16 per GPU) through `accelerate launch`: validation, best-weight saving and loading included.
# Writes results/full/paper-scale/sharded.json and results/full/paper-scale/sharded-train.json.
set -uo pipefail
N=${N:-$(nvidia-smi -L | wc -l)}
J=results/full/paper-scale/sharded.json
RUNS=$(mktemp -d)
bench() { torchrun --nproc_per_node "$N" --master_port 29600 benchmarks/bench_sharded.py --json $J --merge $J "$@"; }
# accelerate keeps one state per process: the float32 check and the bf16 timing run as separate invocations
[ -n "${SKIP_CHECK:-}" ] || { bench --strategy ddp --check --no-bench; bench --strategy fsdp2 --check --no-bench; }
bench --strategy ddp --models opt-1.3b --batch 8
bench --strategy fsdp2 --models opt-1.3b --batch 8
[ -n "${SKIP_LLAMA:-}" ] || bench --strategy fsdp2 --models llama-2-7b --batch 4

cat > "$RUNS/config.json" <<JSON
{"model": "sentence-transformers/all-MiniLM-L6-v2", "dataset": "sst2", "loss": "competency",
 "loss_params": [["method", "gradient"], ["form", "subtract"], ["lam", 0.1]], "epochs": 1, "batch_size": 16,
 "max_train_examples": 8192, "max_eval_examples": 872, "eval_every": 64, "profile": "smoke", "seed": 0}
JSON
# one GPU with the global batch of N processes × 16 rows
python -c "import json,sys; c=json.load(open(sys.argv[1])); c['batch_size']*=$N; json.dump(c, open(sys.argv[2],'w'))" \
  "$RUNS/config.json" "$RUNS/config-one.json"
FSDP="--use_fsdp --fsdp_version 2 --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP --fsdp_transformer_layer_cls_to_wrap BertLayer"
train() {  # label, launcher arguments
  local label=$1; shift
  accelerate launch --num_machines 1 --mixed_precision bf16 --dynamo_backend no "$@" -m compnb.cli train \
    --config "$RUNS/${CONFIG:-config.json}" --runs-root "$RUNS/$label" > "$RUNS/$label.out" 2> "$RUNS/$label.err"
  echo "$label rc $?"; tail -3 "$RUNS/$label.err"
}
CONFIG=config-one.json train one --num_processes 1
train ddp --multi_gpu --num_processes "$N"
train fsdp2 --num_processes "$N" $FSDP
python - "$RUNS" <<'PY'
import json, sys
from pathlib import Path
runs, out = Path(sys.argv[1]), {}
for label in ("one", "ddp", "fsdp2"):
    found = list((runs / label).glob("*/metrics.json"))
    out[label] = json.loads(found[0].read_text()) if found else {"error": (runs / f"{label}.err").read_text()[-1500:]}
    m = out[label]
    print(label, m.get("validation", {}).get("accuracy"), m.get("num_processes"), m.get("steps"), m.get("peak_memory_mb"))
Path("results/full/paper-scale/sharded-train.json").write_text(json.dumps(out, indent=1) + "\n")
PY
