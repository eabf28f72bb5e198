"""Speed: planting, judging (batched, one run at a time, and the plain loop) and a whole sweep.

Run with:  python -m pytest benchmarks -q --benchmark-columns=min,mean,rounds
Figures measured on the development machine are in docs/performance.md.
"""

import subprocess
import sys
import time

import pytest
import torch

from benchmarks.conftest import cuda
from benchmarks.reference_loop import train_plain
from plantbench.judge import judge
from plantbench.plant import plant_task
from plantbench.task import get_task
from plantbench.train import Protocol

EPOCHS = 1  # judge benchmarks train one epoch per run; the suite trains 10


@pytest.mark.parametrize("width", [100, 1000, 4096])
def test_plant_circle_depth_10_cpu(benchmark, width):
    task = get_task("circle")
    net = benchmark.pedantic(plant_task, args=(task, 10, width, 0), rounds=3 if width < 4096 else 1, iterations=1)
    assert net.ticket_size == task.target(10).n_weights


@cuda
@pytest.mark.parametrize("width", [100, 1000, 4096])
def test_plant_circle_depth_10_cuda(benchmark, width):
    task = get_task("circle")
    net = benchmark.pedantic(plant_task, args=(task, 10, width, 0), kwargs={"device": "cuda"}, rounds=3, iterations=1)
    assert net.device.type == "cuda"


def test_judge_batched(benchmark, circle_paper):
    task, nets, data, entries = circle_paper
    out = benchmark.pedantic(judge, args=(task, nets, data, entries, Protocol(epochs=EPOCHS)), rounds=1, iterations=1)
    benchmark.extra_info["runs"] = len(entries)
    benchmark.extra_info["runs_per_second"] = len(entries) / benchmark.stats.stats.mean
    assert len(out) == len(entries)


def test_judge_one_run_at_a_time(benchmark, circle_paper):
    task, nets, data, entries = circle_paper
    few = entries[:5]

    def each():
        return [judge(task, nets, data, [e], Protocol(epochs=EPOCHS)) for e in few]

    benchmark.pedantic(each, rounds=1, iterations=1)
    benchmark.extra_info["runs"] = len(few)
    benchmark.extra_info["runs_per_second"] = len(few) / benchmark.stats.stats.mean


def test_plain_per_run_loop(benchmark, circle_paper):
    task, nets, data, entries = circle_paper
    few = entries[:3]

    def each():
        for e in few:
            net, d = nets[e.seed], data[e.seed]
            train_plain(net.weights, net.biases, e.weights, [torch.ones_like(b, dtype=torch.bool) for b in net.biases],
                        d.x_train, d.y_train, task.kind, epochs=EPOCHS)

    benchmark.pedantic(each, rounds=1, iterations=1)
    benchmark.extra_info["runs"] = len(few)
    benchmark.extra_info["runs_per_second"] = len(few) / benchmark.stats.stats.mean


def test_per_run_speedup_at_the_paper_protocol(benchmark, circle_paper):
    """Side by side at the suite's 10 epochs: the batched judge on the whole Circle group
    against the plain loop, one run at a time; extra_info holds seconds per run and the ratio."""
    task, nets, data, entries = circle_paper
    batched = benchmark.pedantic(lambda: _timed(judge, task, nets, data, entries, Protocol(epochs=10)),
                                 rounds=1, iterations=1) / len(entries)
    plain = min(_timed(train_plain, nets[e.seed].weights, nets[e.seed].biases, e.weights,
                       [torch.ones_like(b, dtype=torch.bool) for b in nets[e.seed].biases],
                       data[e.seed].x_train, data[e.seed].y_train, task.kind, 10)
                for e in entries[:3])  # the best of three runs, in favour of the plain loop
    benchmark.extra_info.update(threads=torch.get_num_threads(), batched_seconds_per_run=batched,
                                plain_seconds_per_run=plain, speedup=plain / batched)
    assert batched < plain


def _timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


@cuda
def test_judge_batched_cuda(benchmark, circle_paper):
    task, nets, data, entries = circle_paper
    benchmark.pedantic(judge, args=(task, nets, data, entries, Protocol(epochs=EPOCHS), "cuda"), rounds=1, iterations=1)
    benchmark.extra_info["runs_per_second"] = len(entries) / benchmark.stats.stats.mean


def test_paper_sweep_end_to_end(benchmark, tmp_path):
    """plantbench run --pruner magnitude --suite paper, from a fresh results folder."""
    def run():
        out = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        subprocess.run([sys.executable, "-m", "plantbench.cli", "run", "--pruner", "magnitude", "--suite", "paper",
                        "--out", str(out), "--quiet", "--no-reference-cache"], check=True, capture_output=True)

    benchmark.pedantic(run, rounds=1, iterations=1)
