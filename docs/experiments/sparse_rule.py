"""Where sparse products pay: one training step of K stacked networks, dense against sparse.

For square hidden layers of several widths and densities it trains K networks of depth 4
(2 inputs, 4 classes, Circle-like shapes, random masks of that density on every layer, biases
kept) for STEPS steps of batch 32, once with train.train_stacked (dense batched products) and
once with plantbench.sparse (the middle layers as CSR products, the first and last dense), and
prints milliseconds per step and their ratio. The rule in plantbench.sparse.RULES was read off
this table. Single-threaded like a sweep's worker; each cell is the best of --repeats:

    OMP_NUM_THREADS=1 python docs/experiments/sparse_rule.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from plantbench import sparse
from plantbench.train import Protocol, train_stacked


def networks(width, density, K, g):
    sizes = [2, width, width, width, 4]
    ws = [torch.randn(K, o, i, generator=g) / i ** 0.5 for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [torch.zeros(K, o) for o in sizes[1:]]
    ms = [torch.rand(w.shape, generator=g) < density for w in ws]
    return ws, bs, ms, [torch.ones_like(b, dtype=torch.bool) for b in bs]


def best_ms(fn, steps, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - start) / steps * 1e3)
    return best


def cell(width, density, K, steps, repeats):
    """Milliseconds per step, dense and sparse, for K networks."""
    g = torch.Generator().manual_seed(width)
    ws, bs, ms, mb = networks(width, density, K, g)
    x = torch.rand(K, 32 * steps, 2, generator=g)
    y = torch.randint(0, 4, (K, 32 * steps), generator=g)
    protocol = Protocol(epochs=1)

    def gens():
        return [torch.Generator().manual_seed(k) for k in range(K)]

    def dense():
        train_stacked(ws, bs, ms, mb, x, y, "classification", protocol, gens())

    def fast():
        stack = sparse.SparseStack(ws, bs, ms, mb, (False, True, True, False))
        sparse.train_sparse(stack, x, y, "classification", protocol, gens())

    return best_ms(dense, steps, repeats), best_ms(fast, steps, repeats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=int, nargs="+", default=[300, 500, 1000, 2000])
    ap.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2])
    ap.add_argument("--nets", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    print(f"threads {torch.get_num_threads()}, {args.steps} steps of batch 32, best of {args.repeats}\n")
    print("| width | density | networks | dense ms/step | sparse ms/step | dense / sparse |")
    print("|---:|---:|---:|---:|---:|---:|")
    for K in args.nets:
        for width in args.widths:
            for density in args.densities:
                dense, fast = cell(width, density, K, args.steps, args.repeats)
                print(f"| {width} | {density} | {K} | {dense:.3f} | {fast:.3f} | {dense / fast:.1f} |", flush=True)


if __name__ == "__main__":
    main()
