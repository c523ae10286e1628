"""What the profiling probes share (they ran on the device with this folder on sys.path): a recorder of
named results (printed and rewritten to $OUT/<name>.json after each), sections that survive their own
errors, and [forward, forward+backward] timings in ms through `oryx bench kernels`' timer."""
import json
import os
import time
import traceback

from oryx.bench.kernels import fwd_and_fwdbwd


def recorder(name: str):
    """rec(key, value): print it and rewrite $OUT/<name>.json with every value so far."""
    out, results = os.environ["OUT"], {}

    def rec(key, value):
        results[key] = value
        print(f"{key:64s} {value}", flush=True)
        with open(f"{out}/{name}.json", "w") as f:
            json.dump(results, f, indent=1)

    return rec


def section(fn):
    """Run one probe section; a failure prints its traceback and the next section runs."""
    t0 = time.time()
    try:
        fn()
    except Exception:
        traceback.print_exc()
    print(f"[{fn.__name__} {time.time()-t0:.0f}s]", flush=True)


def fb(forward, leaves):
    """[forward ms, forward+backward ms] of `forward`, rounded to the microsecond."""
    f, b = fwd_and_fwdbwd(forward, leaves)
    return [round(f, 3), round(b, 3)]


def run_sections(namespace: dict, names: list[str]) -> None:
    """The sections named on the command line, in order."""
    for name in names:
        section(namespace[name])
