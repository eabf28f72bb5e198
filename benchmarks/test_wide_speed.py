"""How the judge's cost grows with the host: a width-1,000 run against a width-100 run, side by side.

Run on demand (never part of the test suite), single-threaded like a sweep's worker:

    OMP_NUM_THREADS=1 python -m pytest benchmarks/test_wide_speed.py -q -s --benchmark-columns=min,rounds

Each test judges two masks on a Circle host of depth 4 (seed 0, one epoch; PLANTBENCH_BENCH_EPOCHS
sets another count) at width 100 and at width 1,000, alternating, and takes the best of
PLANTBENCH_BENCH_REPEATS (default 2) timings of each: the machine may be shared. extra_info holds
the seconds per run of both and their ratio; docs/performance.md gives the figures measured.
"""

import os
import time

import pytest
import torch

from benchmarks.conftest import cuda
from plantbench.judge import Entry, judge
from plantbench.plant import plant_task
from plantbench.task import get_task
from plantbench.train import Protocol

EPOCHS = int(os.environ.get("PLANTBENCH_BENCH_EPOCHS", "1"))
REPEATS = int(os.environ.get("PLANTBENCH_BENCH_REPEATS", "2"))


def _setup(width, density, device="cpu"):
    task = get_task("circle")
    net = plant_task(task, 4, width, 0, device=device)
    g = torch.Generator().manual_seed(width)
    if density == "ticket":
        entries = [Entry(0, [m.cpu() for m in net.ticket_weights], [m.cpu() for m in net.ticket_biases], 1000 + i)
                   for i in range(2)]
    else:
        entries = [Entry(0, [torch.rand(w.shape, generator=g) < density for w in net.weights], None, i)
                   for i in range(2)]
    return task, {0: net}, {0: task.dataset(0)}, entries


def _seconds_per_run(setup, device="cpu", **options):
    task, nets, data, entries = setup
    start = time.perf_counter()
    judge(task, nets, data, entries, Protocol(epochs=EPOCHS), device, **options)
    return (time.perf_counter() - start) / len(entries)


def _side_by_side(narrow, wide, device="cpu", **options):
    best_narrow = best_wide = float("inf")
    for _ in range(REPEATS):
        best_narrow = min(best_narrow, _seconds_per_run(narrow, device, **options))
        best_wide = min(best_wide, _seconds_per_run(wide, device, **options))
    return best_narrow, best_wide


# (width-100 density, width-1,000 density, the bound on their ratio or None). At equal density a
# width-1,000 random mask keeps 100 times the weights of a width-100 one in each middle layer
# (10,000 against 100 at density 0.01), so the last case compares equal kept counts per layer.
CASES = [("ticket", "ticket", 3.0), (0.01, 0.01, None), (0.001, 0.001, None), (1.0, 0.01, 3.0)]


@pytest.mark.parametrize("narrow_density,wide_density,bound", CASES)
def test_width_1000_against_width_100(benchmark, narrow_density, wide_density, bound):
    narrow, wide = _setup(100, narrow_density), _setup(1000, wide_density)
    _seconds_per_run(narrow)  # torch's lazy set-up, outside the timings
    result = {}
    benchmark.pedantic(lambda: result.update(zip(("narrow", "wide"), _side_by_side(narrow, wide))),
                       rounds=1, iterations=1)
    ratio = result["wide"] / result["narrow"]
    benchmark.extra_info.update(threads=torch.get_num_threads(), epochs=EPOCHS, width_100_seconds_per_run=result["narrow"],
                                width_1000_seconds_per_run=result["wide"], ratio=ratio)
    print(f"\nwidth 100 at {narrow_density}: {result['narrow']:.3f} s/run, width 1000 at {wide_density}: "
          f"{result['wide']:.3f} s/run, ratio {ratio:.2f}")
    if bound is not None:
        assert ratio <= bound


def test_width_1000_sparse_products_against_dense_ones(benchmark):
    """The judge at width 1,000 and density 0.01 with and without sparse products (no network
    is compacted there: nearly every neuron is live)."""
    wide = _setup(1000, 0.01)
    dense = _seconds_per_run(wide, sparse=False)
    fast = benchmark.pedantic(lambda: _seconds_per_run(wide), rounds=REPEATS, iterations=1)
    benchmark.extra_info.update(dense_seconds_per_run=dense, sparse_seconds_per_run=fast, speedup=dense / fast)
    print(f"\nwidth 1000, density 0.01: dense products {dense:.2f} s/run, sparse {fast:.2f} s/run")
    assert fast < dense


@cuda
@pytest.mark.parametrize("density", [0.01, "ticket"])
def test_width_1000_against_width_100_cuda(benchmark, density):
    """On a GPU every layer stays dense (no rule has been measured there); this measures how the
    cost grows with the width on the device."""
    narrow, wide = _setup(100, density, "cuda"), _setup(1000, density, "cuda")
    _seconds_per_run(narrow, "cuda")
    result = {}
    benchmark.pedantic(lambda: result.update(zip(("narrow", "wide"), _side_by_side(narrow, wide, "cuda"))),
                       rounds=1, iterations=1)
    benchmark.extra_info.update(width_100_seconds_per_run=result["narrow"], width_1000_seconds_per_run=result["wide"],
                                ratio=result["wide"] / result["narrow"])
