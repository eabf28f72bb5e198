"""How the judge's cost grows with the host: seconds per run, dense path against the judge's own.

For each width, depth and density below it plants one Circle host (seed 0), draws NETS masks of
that density (independently at random per layer; "ticket" is the planted ticket's own mask, biases
included) and judges them in one batch, trained for EPOCHS epochs, once with compact=False and
sparse=False (every network on the whole host, dense products) and once as the judge does by
default (dead neurons dropped, plantbench.compact; very sparse layers of wide hosts as sparse
products, plantbench.sparse). It prints a Markdown table of seconds per run, the widest live
hidden layer of the masks and how many of a network's layers took sparse products.
Cells whose dense path would take more than --budget seconds (estimated from the dense
arithmetic) are skipped and marked so; the judge's path is skipped only where it is the dense
path too. Each cell is the best of --repeats timings. Single-threaded like a sweep's worker:

    OMP_NUM_THREADS=1 python docs/experiments/cost_growth.py --widths 100 300 1000 --depths 4 9
    OMP_NUM_THREADS=1 python docs/experiments/cost_growth.py --widths 4096 --depths 4 9 --budget 200
"""

from __future__ import annotations

import argparse
import time

import torch

from plantbench import compact, sparse
from plantbench.judge import Entry, judge
from plantbench.plant import plant_task
from plantbench.task import get_task
from plantbench.train import Protocol

GFLOPS = 40.0  # dense training arithmetic rate assumed for the --budget estimate (1 core)


def masks(net, density, n, g):
    if density == "ticket":
        return [Entry(0, net.ticket_weights, net.ticket_biases, 1000 + i) for i in range(n)]
    return [Entry(0, [torch.rand(w.shape, generator=g) < density for w in net.weights], None, i) for i in range(n)]


def seconds_per_run(task, net, data, entries, epochs, fast, repeats):
    """The best of `repeats` timings (the machine may be shared), per network."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        judge(task, {0: net}, {0: data}, entries, Protocol(epochs=epochs), compact=fast, sparse=fast)
        best = min(best, (time.perf_counter() - start) / len(entries))
    return best


def widest_live(entries):
    """The widest live hidden layer, the most sparse layers of a network, and whether compacted."""
    M = [torch.stack([e.weights[l] for e in entries]) for l in range(len(entries[0].weights))]
    MB = [torch.stack([e.biases[l] if e.biases else torch.ones(m.shape[1], dtype=torch.bool) for e in entries])
          for l, m in enumerate(M)]
    live = compact.live_neurons(M, MB)
    widest = max(int(m.sum(1).max()) for m in live)
    if compact.plan(live, [m.shape[1] for m in M[:-1]], len(entries))[0][0] is not None:
        return widest, 0, True  # compacted: every layer small enough for dense products
    return widest, max(sum(layout) for layout in sparse.layouts(M, torch.device("cpu"))), False


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
    print("| width | depth | density | widest live layer | sparse layers | dense path s/run | judge's path s/run |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for depth in args.depths:
        for width in args.widths:
            net = plant_task(task, depth, width, 0)
            for d in args.densities:
                density = d if d == "ticket" else float(d)
                entries = masks(net, density, args.nets, torch.Generator().manual_seed(width + depth))
                estimate = 6 * net.n_weights * n * args.epochs / (GFLOPS * 1e9) * args.nets
                skipped = f"not run (about {estimate / args.nets:.0f})"
                live, n_sparse, compacted = widest_live(entries)
                dense = (f"{seconds_per_run(task, net, data, entries, args.epochs, False, args.repeats):.2f}"
                         if estimate <= args.budget else skipped)
                as_dense = not compacted and not n_sparse  # the judge's path is the dense path
                fast = (skipped if as_dense and estimate > args.budget
                        else f"{seconds_per_run(task, net, data, entries, args.epochs, True, args.repeats):.2f}")
                print(f"| {width} | {depth} | {d} | {live} | {n_sparse} | {dense} | {fast} |", flush=True)


if __name__ == "__main__":
    main()
