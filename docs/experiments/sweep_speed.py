"""What the reference cache and the load balance save on a second pruner's `paper` sweep.

In a fresh reference cache (a temporary folder): a `magnitude` sweep fills it, then the same
`random` sweep runs three ways, each into a fresh results folder, with --jobs 2:
cache warm and groups balanced (the default), cache off, and groups not split (one group per
task, as before runner.balance). Prints wall seconds of each.

    python docs/experiments/sweep_speed.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from plantbench import runner
from plantbench.config import SweepConfig


def timed(out: Path, pruner: str, **kw) -> float:
    start = time.perf_counter()
    result = runner.sweep(SweepConfig(pruner, suite="paper", jobs=2, out=out / f"{pruner}-{len(list(out.iterdir()))}", **kw))
    assert not result.failed
    return time.perf_counter() - start


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["PLANTBENCH_CACHE"] = str(tmp / "cache")
        out = tmp / "results"
        out.mkdir()
        print(f"magnitude, cache cold, balanced: {timed(out, 'magnitude'):.1f} s", flush=True)
        print(f"random, cache warm, balanced: {timed(out, 'random'):.1f} s", flush=True)
        print(f"random, cache off, balanced: {timed(out, 'random', reference_cache=False):.1f} s", flush=True)
        balance = runner.balance
        runner.balance = lambda groups, workers: list(groups)
        try:
            print(f"random, cache warm, one group per task: {timed(out, 'random'):.1f} s", flush=True)
            print(f"random, cache off, one group per task: {timed(out, 'random', reference_cache=False):.1f} s", flush=True)
        finally:
            runner.balance = balance


if __name__ == "__main__":
    main()
