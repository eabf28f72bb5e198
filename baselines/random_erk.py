"""Random pruning with Erdős–Rényi layer densities (random-erk).

The per-layer densities follow the Erdős–Rényi rule of Evci et al., "Rigging the Lottery:
Making All Tickets Winners" (RigL, ICML 2020), itself from Mocanu et al. (2018): a layer with
n_in inputs and n_out outputs keeps a fraction proportional to (n_in + n_out) / (n_in * n_out),
so small layers stay denser than large ones. The common factor is chosen so the kept weights
add up to exactly round(density x total weights); a layer whose share would exceed 1 is kept
dense and the rest of the budget is spread over the other layers (as in RigL's code). Within a
layer the kept weights are a uniformly random set, drawn from the problem's generator.

Defaults: none to set; the Erdős–Rényi rule (not ERK's kernel variant, which only differs for
convolutions) as in RigL.
"""

import torch

from plantbench import Mask, Pruner


def erdos_renyi_counts(shapes, k):
    """How many weights each [n_out, n_in] layer keeps so the total is exactly k.

    Real-valued targets eps * (n_in + n_out) are found with dense layers clamped, then
    rounded by largest remainder so they sum to k and no layer exceeds its size.
    """
    sizes = [n_out * n_in for n_out, n_in in shapes]
    k = max(0, min(int(k), sum(sizes)))
    weight = [n_out + n_in for n_out, n_in in shapes]  # density x size, up to the common factor
    dense = [False] * len(shapes)
    while True:
        left = k - sum(s for s, d in zip(sizes, dense) if d)
        spread = sum(w for w, d in zip(weight, dense) if not d)
        eps = left / spread if spread else 0.0
        over = [i for i in range(len(shapes)) if not dense[i] and eps * weight[i] >= sizes[i]]
        if not over:
            break
        for i in over:
            dense[i] = True
    target = [float(s) if d else eps * w for s, w, d in zip(sizes, weight, dense)]
    counts = [min(int(t), s) for t, s in zip(target, sizes)]
    order = sorted(range(len(shapes)), key=lambda i: (counts[i] - target[i], i))
    for i in order:
        if sum(counts) >= k:
            break
        if counts[i] < sizes[i]:
            counts[i] += 1
    return counts


class RandomERK(Pruner):
    name = "random-erk"

    def prune(self, problem):
        params = list(problem.model.prunable())
        shapes = [tuple(p.shape) for _, p in params]
        total = sum(p.numel() for _, p in params)
        k = int(round(problem.density * total))
        counts = erdos_renyi_counts(shapes, k)
        entries = {}
        for (name, p), c in zip(params, counts):
            keep = torch.zeros(p.numel(), dtype=torch.bool)
            keep[torch.randperm(p.numel(), generator=problem.generator)[:c]] = True
            entries[name] = keep.reshape(p.shape).to(problem.device)
        return Mask(entries)
