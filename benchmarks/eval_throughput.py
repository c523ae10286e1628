"""Throughput of the `oryx` lm-eval model on the offline task suite (requests per second), on the CPU.

    python benchmarks/eval_throughput.py --corpus runs/data/shakespeare [--checkpoint DIR] [--limit N]

For each configuration (batch size x prefix reuse) the offline suite (oryx_cloze, oryx_heldout,
oryx_passkey) and oryx_mqar run through `lm_eval.simple_evaluate`; the time spent inside the model's
request methods (loglikelihood, loglikelihood_rolling, generate_until: tokenizing, batching, forwards)
is measured per request type. Without --checkpoint the model is Oryx-Mamba2 tiny with random weights
(speed does not depend on the weights, except through the length of generated text; the JSON says which).
Prints a table and writes benchmarks/results/eval-throughput-cpu.json (machine, date, versions, command).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

TASKS = ["oryx_offline", "oryx_mqar"]
METHODS = ("loglikelihood", "loglikelihood_rolling", "generate_until")
RESULTS = Path(__file__).resolve().parent / "results" / "eval-throughput-cpu.json"
TASKS_DIR = Path(__file__).resolve().parents[1] / "evals" / "tasks"


def timed(lm, stats: dict) -> None:
    """Wrap lm's request methods: requests and seconds per request type go into `stats`."""
    for name in METHODS:
        method = getattr(lm, name)

        def wrapper(requests, *args, _method=method, _name=name, **kwargs):
            start = time.perf_counter()
            out = _method(requests, *args, **kwargs)
            row = stats.setdefault(_name, {"requests": 0, "seconds": 0.0})
            row["requests"] += len(requests)
            row["seconds"] += time.perf_counter() - start
            return out

        setattr(lm, name, wrapper)


def run(checkpoint: str, corpus: str, batch_size: int, reuse_prefix: bool, limit: int | None) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from evals.harness import OryxLM

    lm = OryxLM(pretrained=checkpoint, schedule="chunks:64:0.25", batch_size=batch_size, reuse_prefix=reuse_prefix,
                device="cpu")
    stats: dict = {}
    timed(lm, stats)
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"corpus": corpus})
    lm_eval.simple_evaluate(model=lm, tasks=TASKS, task_manager=manager, limit=limit, bootstrap_iters=0)
    requests = sum(r["requests"] for r in stats.values())
    seconds = sum(r["seconds"] for r in stats.values())
    for row in stats.values():
        row["requests_per_s"] = row["requests"] / row["seconds"]
    return {"batch_size": batch_size, "reuse_prefix": reuse_prefix, "requests": requests, "seconds": seconds,
            "requests_per_s": requests / seconds, "per_type": stats}


def random_checkpoint(directory: Path) -> str:
    from oryx import presets
    from oryx.data.tokenizers import ByteTokenizer
    from oryx.model import OryxForCausalLM
    from oryx.pretrained import save_pretrained

    torch.manual_seed(0)
    tok = ByteTokenizer()
    save_pretrained(OryxForCausalLM(presets.get("oryx-mamba2-tiny", vocab_size=tok.vocab_size)), tok, directory)
    return str(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="prepared corpus directory (oryx data prepare shakespeare)")
    parser.add_argument("--checkpoint", help="model directory or training out_dir (default: random tiny model)")
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default all)")
    parser.add_argument("--batch-sizes", default="1,16", help="comma-separated batch sizes")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or random_checkpoint(Path(tmp) / "model")
        rows = [run(checkpoint, args.corpus, int(b), reuse, args.limit)
                for b in args.batch_sizes.split(",") for reuse in (True, False)]
    print(f"{'batch':>5} {'prefix reuse':>12} {'requests':>9} {'seconds':>8} {'req/s':>8}   per type (req/s)")
    for r in rows:
        per = ", ".join(f"{k} {v['requests_per_s']:.1f}" for k, v in r["per_type"].items())
        print(f"{r['batch_size']:>5} {r['reuse_prefix']!s:>12} {r['requests']:>9} {r['seconds']:>8.2f} "
              f"{r['requests_per_s']:>8.1f}   {per}")
    import lm_eval

    report = {
        "benchmark": "oryx lm-eval model on the offline suite, CPU",
        "tasks": TASKS, "limit": args.limit, "schedule": "chunks:64:0.25",
        "checkpoint": args.checkpoint or "random oryx-mamba2-tiny (byte tokenizer)",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    # other work on the machine slows every row alike; the load says how busy it was
                    "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "lm_eval": getattr(lm_eval, "__version__", "unknown")},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
