"""How the judge's cost grows with the host: seconds per run, dense path against the compact one.

For each width, depth and density below it plants one Circle host (seed 0), draws NETS masks of
that density (independently at random per layer; "ticket" is the planted ticket's own mask, biases
included) and judges them in one batch, trained for EPOCHS epochs, once with compact=False (every
network on the whole host) and once with the default compact path (plantbench.compact). It
prints a Markdown table of seconds per run and the widest live hidden layer of the masks.
Cells that would take more than --budget seconds (estimated from the dense arithmetic) are
skipped and marked so. Each cell is the best of --repeats timings. Single-threaded like a sweep's worker:

    OMP_NUM_THREADS=1 python docs/experiments/cost_growth.py --widths 100 300 1000 --depths 4 9
    OMP_NUM_THREADS=1 python docs/experiments/cost_growth.py --widths 4096 --depths 4 9 --budget 200
"""

from __future__ import annotations

import argparse
import time

import torch

from plantbench import compact
from plantbench.judge import Entry, judge
from plantbench.plant import plant_task
from plantbench.task import get_task
from plantbench.train import Protocol

GFLOPS = 40.0  # dense training arithmetic rate assumed for the --budget estimate (1 core)


def masks(net, density, n, g):
    if density == "ticket":
        return [Entry(0, net.ticket_weights, net.ticket_biases, 1000 + i) for i in range(n)]
    return [Entry(0, [torch.rand(w.shape, generator=g) < density for w in net.weights], None, i) for i in range(n)]


def seconds_per_run(task, net, data, entries, epochs, use_compact, repeats):
    """The best of `repeats` timings (the machine may be shared), per network."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        judge(task, {0: net}, {0: data}, entries, Protocol(epochs=epochs), compact=use_compact)
        best = min(best, (time.perf_counter() - start) / len(entries))
    return best


def widest_live(entries):
    M = [torch.stack([e.weights[l] for e in entries]) for l in range(len(entries[0].weights))]
    MB = [torch.stack([e.biases[l] if e.biases else torch.ones(m.shape[1], dtype=torch.bool) for e in entries])
          for l, m in enumerate(M)]
    return max(int(m.sum(1).max()) for m in compact.live_neurons(M, MB))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--depths", type=int, nargs="+", default=[4, 9])
    ap.add_argument("--densities", nargs="+", default=["0.5", "0.01", "ticket"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--nets", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--budget", type=float, default=120.0, help="skip a cell estimated to take longer (seconds)")
    args = ap.parse_args()
    task = get_task("circle")
    data = task.dataset(0)
    n = data.x_train.shape[0]
    warm = plant_task(task, 4, 32, 0)  # first calls pay for torch's lazy set-up: not in any cell
    judge(task, {0: warm}, {0: data}, masks(warm, 0.5, 1, torch.Generator()), Protocol(epochs=1))
    print(f"threads {torch.get_num_threads()}, epochs {args.epochs}, {args.nets} networks per batch, seed 0\n")
    print("| width | depth | density | widest live layer | dense path s/run | compact path s/run |")
    print("|---:|---:|---|---:|---:|---:|")
    for depth in args.depths:
        for width in args.widths:
            net = plant_task(task, depth, width, 0)
            for d in args.densities:
                density = d if d == "ticket" else float(d)
                entries = masks(net, density, args.nets, torch.Generator().manual_seed(width + depth))
                estimate = 6 * net.n_weights * n * args.epochs / (GFLOPS * 1e9) * args.nets
                skipped = f"not run (about {estimate / args.nets:.0f})"
                live = widest_live(entries)
                dense = (f"{seconds_per_run(task, net, data, entries, args.epochs, False, args.repeats):.2f}"
                         if estimate <= args.budget else skipped)
                as_dense = compact.padded_width(live) > compact.COMPACT_FRACTION * width  # the compact path would not compact
                fast = (skipped if as_dense and estimate > args.budget
                        else f"{seconds_per_run(task, net, data, entries, args.epochs, True, args.repeats):.2f}")
                print(f"| {width} | {depth} | {d} | {live} | {dense} | {fast} |", flush=True)


if __name__ == "__main__":
    main()
