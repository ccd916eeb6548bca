"""Do two from-scratch GPU trainings of one config give identical results, with and without
`COMPNB_DETERMINISTIC=1`, and what does the switch cost?

    python benchmarks/bench_determinism.py --json results/full/paper-scale/determinism.json [--loss competency]

Each mode runs in its own process (the switch is process-wide): the chapter-3 loss with gradient saliency
(subtract, λ 0.1; or `--loss ce`) on MiniLM, 2,048 SST-2 training rows, one epoch, batch 32, validation on 872
rows, trained twice from scratch (`force=True`) into a temporary folder. Recorded per mode: both runs'
validation accuracy, whether their validation probabilities and loss curves are bit-identical, the largest
probability difference, ms per optimizer step, and the error when an operation has no deterministic
implementation (PyTorch names it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, numpy as np
from compnb import training
cfg = training.TrainConfig(dataset="sst2", loss=sys.argv[2], loss_params=json.loads(sys.argv[3]), epochs=1,
                           batch_size=32, max_train_examples=2048, max_eval_examples=872, eval_every=None,
                           patience=None, profile="smoke", seed=0)
out = []
for i in range(2):
    try:
        folder = training.train(cfg, runs_root=f"{sys.argv[1]}/run{i}", force=True)
    except RuntimeError as err:
        print(json.dumps({"error": str(err).splitlines()[0][:400]})); sys.exit(0)
    m = json.loads((folder / "metrics.json").read_text())
    out.append({"probs": np.load(folder / "val_probs.npy").tolist(), "loss": [e["loss"] for e in m["train_loss"]],
                "accuracy": m["validation"]["accuracy"], "ms": 1000 * m["train_time_s"] / m["steps"],
                "deterministic": m.get("deterministic")})
print(json.dumps(out))
"""


def mode(deterministic: bool, loss: str, params: dict) -> dict:
    env = {**os.environ, "COMPNB_DETERMINISTIC": "1" if deterministic else "0", "TQDM_DISABLE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", CHILD, tmp, loss, json.dumps(params)], env=env,
                              capture_output=True, text=True, cwd=ROOT)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode or not last.startswith(("[", "{")):
        return {"deterministic": deterministic, "error": done.stderr.strip().splitlines()[-1][:400]}
    runs = json.loads(last)
    if isinstance(runs, dict):
        return {"deterministic": deterministic, **runs}
    import numpy as np

    a, b = (np.asarray(r["probs"]) for r in runs)
    return {"deterministic": deterministic, "accuracy": [r["accuracy"] for r in runs],
            "probabilities identical": bool((a == b).all()), "max |Δ probability|": float(np.abs(a - b).max()),
            "loss curves identical": runs[0]["loss"] == runs[1]["loss"], "ms per step": [r["ms"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--loss", default="competency", choices=("competency", "ce"))
    args = parser.parse_args()
    params = {"method": "gradient", "form": "subtract", "lam": 0.1} if args.loss == "competency" else {}
    import torch

    record = {"benchmark": "determinism", "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU",
              "torch": torch.__version__, "loss": args.loss, "loss_params": params,
              "modes": [mode(False, args.loss, params), mode(True, args.loss, params)]}
    print(json.dumps(record, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
