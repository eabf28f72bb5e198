"""Speed of the pruners that train: a whole group in lockstep (prune_group) against one problem at
a time (prune) and, for the multi-shot pruners, against the same epochs in the plain PyTorch loop.
The score-training pruners (edge-popup, edge-popup-annealed, gem-miner) run on one thread, as a
sweep's worker processes do.

Run with:  python -m pytest benchmarks/test_prune_speed.py -q -s
The group is the paper suite's circle group (5 seeds x 5 densities); PLANTBENCH_BENCH_SEEDS=2
runs the first two seeds only. Figures measured on the development machine are in
docs/performance.md.
"""

import os
import time
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from benchmarks.reference_loop import train_plain
from plantbench.loading import BASELINES
from plantbench.plant import plant_task
from plantbench.seek import make_problem
from plantbench.suite import get_suite
from plantbench.task import get_task

SUITE = get_suite("paper")
SEEDS = int(os.environ.get("PLANTBENCH_BENCH_SEEDS", SUITE.seeds))


def circle_group():
    task = get_task("circle")
    return [make_problem(task, SUITE.depth, SUITE.widths, s, d, protocol=SUITE.protocol)
            for s in range(SEEDS) for d in SUITE.grid("circle")]


def _plain_run(args):
    """One run's training epochs in the plain loop, in a worker process on one thread."""
    seed, epochs = args
    torch.set_num_threads(1)
    task = get_task("circle")
    net, data = plant_task(task, SUITE.depth, SUITE.widths, seed), task.dataset(seed)
    ones = [torch.ones_like(w, dtype=torch.bool) for w in net.weights]
    start = time.perf_counter()
    train_plain(net.weights, net.biases, ones, [torch.ones_like(b, dtype=torch.bool) for b in net.biases],
                data.x_train, data.y_train, task.kind, epochs=epochs, seed=seed)
    return time.perf_counter() - start


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


@pytest.mark.parametrize("name", ["imp", "synflow-multishot"])
def test_multishot_group_against_one_at_a_time_and_the_plain_loop(benchmark, name):
    cls = BASELINES.get(name)
    torch.set_num_threads(2)
    group, masks = benchmark.pedantic(lambda: _timed(lambda: cls().prune_group(circle_group())), rounds=1, iterations=1)
    each, alone = _timed(lambda: [cls().prune(p) for p in circle_group()])
    epochs = cls().rounds * cls().epochs
    with ProcessPoolExecutor(2) as pool:  # two runs at a time on two cores, one thread each
        plain, _ = _timed(lambda: list(pool.map(_plain_run, [(p, epochs) for p in range(SEEDS) for _ in SUITE.grid("circle")])))
    flips = sum(int((a[k] != b[k]).sum()) for a, b in zip(alone, masks) for k in a)
    benchmark.extra_info.update(problems=len(masks), group_seconds=group, one_at_a_time_seconds=each,
                                plain_loop_seconds=plain, speedup_vs_one_at_a_time=each / group,
                                speedup_vs_plain=plain / group, weights_differing=flips)
    print(f"\n{name}: {len(masks)} problems, group {group:.1f} s, one at a time {each:.1f} s, "
          f"plain loop (2 processes) {plain:.1f} s; {flips} weights differ")
    assert group < each


@pytest.mark.parametrize("name", ["edge-popup", "edge-popup-annealed", "gem-miner"])
def test_score_training_group_against_one_at_a_time(benchmark, name):
    cls = BASELINES.get(name)
    torch.set_num_threads(1)
    group, masks = benchmark.pedantic(lambda: _timed(lambda: cls().prune_group(circle_group())), rounds=1, iterations=1)
    each, alone = _timed(lambda: [cls().prune(p) for p in circle_group()])
    flips = sum(int((a[k] != b[k]).sum()) for a, b in zip(alone, masks) for k in a)
    benchmark.extra_info.update(problems=len(masks), group_seconds=group, one_at_a_time_seconds=each,
                                speedup_vs_one_at_a_time=each / group, weights_differing=flips)
    print(f"\n{name}: {len(masks)} problems, group {group:.1f} s, one at a time {each:.1f} s "
          f"({each / group:.1f}x); {flips} weights differ")
    assert flips == 0 and group < each
