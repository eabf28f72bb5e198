"""Edge-popup: learn a score per weight and bias, keep the top-k in every layer (strong tickets).

Paper: V. Ramanujan, M. Wortsman, A. Kembhavi, A. Farhadi and M. Rastegari, "What's Hidden in a
Randomly Weighted Neural Network?", CVPR 2020 (code: allenai/hidden-networks). Plant 'n' Seek
(Fischer and Burkholz, ICLR 2022) ran it with the settings used here as defaults.

The weights stay frozen. Every weight and every bias gets a score, drawn like kaiming-uniform
(U[-1/sqrt(fan_in), 1/sqrt(fan_in)]) from the problem's generator. The forward pass keeps the
top-k |score| of every layer, a `density` fraction of its weights and the same fraction of its
biases, and the gradient goes straight through the top-k to the scores.

Defaults, from Plant 'n' Seek's edge-popup protocol: SGD with lr 0.1, momentum 0.9, weight decay
5e-4 on the scores, a cosine schedule over 10 epochs, batch size 128 (the batch size of
hidden-networks). `edge-popup-annealed` is the paper's annealed variant: epoch i (from 0) trains
at density rho^((i + 1) / epochs), so the density falls geometrically and ends at rho.

The readout scale. A sparse subnetwork of the planted host, the ticket above all, computes its
function only up to a tiny per-output scale (ticket output = c * target, with c about 1e-5 to
1e-3), and the judge fits that scale before measuring. Training the scores against the raw
outputs would push every mask toward large outputs instead, which is why the authors' edge-popup
evaluation could not score even the ticket. Here the loss sees the outputs through a readout:
for regression, the least-squares scale of each output on the batch (detached); for
classification, the logits divided by their (detached) per-class batch RMS, times per-class scales
learned with the scores (not part of the mask, no weight decay).

All problems of a group (`prune_group`) train their scores together, stacked along a leading
axis (`ScoreStack` from plantbench), each with its own generator for its scores and batch order, so a
mask does not depend on the problems beside it; `prune` is the group of one problem.

The density budget counts weights only; biases are masked at the same fraction and reported
separately by the judge.
"""

import math

import torch

from plantbench import Mask, Pruner, bias_name, prune_by_shape, schedules, weight_name


def _init_scores(stack, scores):
    """kaiming-uniform-like scores, U[-1/sqrt(fan_in), 1/sqrt(fan_in)] for weights and biases,
    drawn from each problem's own generator (layer by layer, the weights then the biases)."""
    depth = len(stack.weights)
    views = scores.views()
    with torch.no_grad():
        for k, problem in enumerate(stack.problems):
            for l, w in enumerate(stack.weights):
                bound = 1.0 / math.sqrt(w.shape[2])
                views[l][k].copy_(_uniform(w.shape[1:], bound, problem.generator))
                views[depth + l][k].copy_(_uniform(w.shape[1:2], bound, problem.generator))


def _uniform(shape, bound, generator):
    return torch.rand(shape, generator=generator, dtype=torch.float32).mul_(2 * bound).sub_(bound)


def _named(views, k):
    """Problem k's scores by parameter name (weights, then biases)."""
    depth = len(views) // 2
    named = {weight_name(l): views[l][k].detach() for l in range(depth)}
    named.update({bias_name(l): views[depth + l][k].detach() for l in range(depth)})
    return named


def _top_k(scores, density):
    """The per-layer top-k of |score| (exact, deterministic ties), weights and biases apart."""
    keep = {}
    for prefix in (".weight", ".bias"):
        part = {n: s.abs() for n, s in scores.items() if n.endswith(prefix)}
        keep.update(Mask.top_k(part, density, scope="layer"))
    return keep


def _straight_through(scores, counts):
    """Per layer the top-k mask of |score| of every problem forward, d(mask)/d(score) = sign(score)
    backward. scores [K, ...], counts [K] (how many each problem keeps).

    The mask keeps every entry at least as large as the k-th largest: with continuous random
    scores exact ties do not occur, so that is the top-k. The k-th largest comes from one
    kthvalue call per distinct count (one per density in a sweep's group), which is about twice
    as fast as topk at the larger counts.
    """
    a = scores.abs()
    flat = a.detach().reshape(a.shape[0], -1)
    n = flat.shape[1]
    kth = torch.full((flat.shape[0],), float("inf"), dtype=flat.dtype, device=flat.device)
    for c in counts.unique().tolist():
        if c > 0:
            rows = counts == c
            kth[rows] = flat[rows].kthvalue(n - c + 1, dim=1).values
    hard = flat >= kth[:, None]
    return hard.view(a.shape).to(a.dtype) + (a - a.detach())


class EdgePopup(Pruner):
    """Learn scores on the frozen host and keep the per-layer top-k (weights and biases)."""

    name = "edge-popup"
    anneal = False

    def __init__(self, epochs: int = 10, lr: float = 0.1, momentum: float = 0.9,
                 weight_decay: float = 5e-4, batch_size: int = 128):
        if int(epochs) < 0 or int(batch_size) < 1:
            raise ValueError(f"need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.batch_size = int(batch_size)

    def density_at(self, epoch, density):
        """The density trained at in epoch `epoch` (0-based)."""
        if not self.anneal or self.epochs == 0:
            return density
        return schedules.exponential(density, epoch + 1, self.epochs)

    def prune(self, problem):
        return self.prune_group([problem])[0]

    def prune_group(self, problems):
        """Every problem's scores trained together, problems of one shape in one stack."""
        return prune_by_shape(problems, self._prune_stack)

    def _prune_stack(self, stack):
        depth = len(stack.weights)
        scores = stack.buffer([w.shape[1:] for w in stack.weights] + [b.shape[1:] for b in stack.biases])
        _init_scores(stack, scores)
        readout = stack.readout_scales()
        groups = [{"params": [scores.flat], "weight_decay": self.weight_decay}]
        if readout is not None:
            groups.append({"params": [readout.flat], "weight_decay": 0.0})
        opt = torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum)
        for epoch in range(self.epochs):
            for g in opt.param_groups:
                g["lr"] = schedules.cosine(self.lr, epoch, self.epochs)
            counts = self._counts(stack, scores, epoch)
            for x, y in stack.batches(self.batch_size):
                views = scores.views()
                masks = [_straight_through(v, c) for v, c in zip(views, counts)]
                out = stack.forward(x, masks[:depth], masks[depth:])
                loss = stack.loss(out, y, None if readout is None else readout.views()[0])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        views = scores.views()
        return [Mask(_top_k(_named(views, k), p.density)) for k, p in enumerate(stack.problems)]

    def _counts(self, stack, scores, epoch):
        """Per layer (weights, then biases) how many entries each problem keeps in this epoch [K]
        (the shares Mask.top_k uses at the epoch's density)."""
        views = scores.views()
        per_problem = []
        for k, p in enumerate(stack.problems):
            keep = _top_k(_named(views, k), self.density_at(epoch, p.density))
            per_problem.append([int(keep[n].sum()) for n in _named(views, k)])
        return torch.tensor(per_problem, device=stack.device).T


class EdgePopupAnnealed(EdgePopup):
    """Edge-popup with the density lowered to rho^((i + 1) / epochs) in epoch i."""

    name = "edge-popup-annealed"
    anneal = True
