"""Cost of the learned router per training step (issue 17), through the trainer's own optimizer step.

    python benchmarks/router_cost.py --device cpu --size tiny --seq-len 256 --batch 8          # this machine
    python benchmarks/router_cost.py --device cuda --size 125m --seq-len 2048 --batch 8 --out $OUT   # H200

`oryx.bench.train.measure` times `Trainer.update` (forward, backward, AdamW) of one preset under:
  random:F:1            F of the positions, scattered, in attention mode: the same attention path, no router
  learned:F  per-layer  a scorer per layer (MLP d -> hidden -> 1)
  learned:F  shared     one scorer for all layers plus a bias per layer
  learned:F  linear     a linear scorer per layer (hidden 0)
The router's cost is the learned rows' step time over the random row's (the drawn fractions are printed:
both are F on average). Rounds alternate the schedules (A B C D A B C D ...) so that a slow spell of a
shared machine touches every schedule alike; the median and the fastest round are reported (on a
contended machine the fastest round is the better estimate of the cost). Writes
router-cost-<size>-<device>.json (machine, date, versions, command; every round's time) under --out.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from oryx.bench.record import write_results
from oryx.bench.train import measure

VARIANTS = {  # name -> (schedule template, model.router)
    "random (no router)": ("random:{f}:1", None),
    "learned, per-layer scorer": ("learned:{f}", {"shared": False, "hidden": 32}),
    "learned, shared scorer": ("learned:{f}", {"shared": True, "hidden": 32}),
    "learned, linear scorer": ("learned:{f}", {"shared": False, "hidden": 0}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="oryx-mamba2")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cpu-threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    preset = f"{args.family}-{args.size}"
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rows: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, (template, router) in VARIANTS.items():
            row = measure(preset, args.seq_len, args.batch, args.batch, args.steps, args.warmup, args.device,
                          args.cpu_threads or None, template.format(f=args.fraction),
                          None if router is None else {"router": router})
            times[name].append(row["step_ms"])
            rows[name] = row
    base = statistics.median(times["random (no router)"])
    out = []
    for name, row in rows.items():
        median = statistics.median(times[name])
        router_params = row["params"] - rows["random (no router)"]["params"]
        fastest = min(times[name])
        out.append({**row, "variant": name, "step_ms": median, "step_ms_rounds": times[name],
                    "router_params": router_params, "vs_random": median / base,
                    "fastest_vs_random": fastest / min(times["random (no router)"])})
        print(f"{name:28s} {median:8.1f} ms/step (median)  x{median / base:.3f}  fastest round "
              f"x{out[-1]['fastest_vs_random']:.3f}  router params {router_params:,}  "
              f"drawn fraction {row['attention_fraction']:.3f}", flush=True)
    where = "cuda" if out[0]["device"].startswith("cuda") else "cpu"
    path = write_results(f"router-cost-{args.size}-{where}", out, {"fraction": args.fraction, "rounds": args.rounds},
                         args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
