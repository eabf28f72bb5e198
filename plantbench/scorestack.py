"""Train scores on many problems' frozen hosts at once: the lockstep path of score-training pruners.

Edge-popup and GEM-Miner learn a score per weight while the host stays frozen. `ScoreStack`
stacks the frozen hosts and training splits of problems of one shape along a leading axis, so
that one batched forward and backward pass (autograd through `torch.baddbmm`) serves all of
them. Every problem draws its batch order from its own generator, and its scores live in their
own slice of the stack, so its scores, and hence its mask, never depend on the problems beside it.

Why stacked products and not `torch.func.vmap`: one edge-popup epoch on the `paper` suite's
Circle group (25 problems) took 2.1 s stacked and 2.15 s with vmap of the one-problem forward on
one thread (vmap lowers to the same batched products), and 1.9 to 4.5 s against 9.9 to 14.5 s
on two threads of a loaded 2-core machine; see docs/performance.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from .lockstep import _shape_key
from .network import leaf, stacked_forward
from .train import _VECTOR, inverse_rms, regression_scale, task_loss

if TYPE_CHECKING:
    from .mask import Mask
    from .pruner import PruneProblem


def prune_by_shape(problems: Sequence[PruneProblem], prune_stack: Callable[[ScoreStack], list[Mask]]) -> list[Mask]:
    """One mask per problem, in order: `prune_stack` is called once per `ScoreStack` of problems
    whose hosts, training splits, tasks and protocols have the same shapes and settings."""
    problems = list(problems)
    buckets: dict[tuple, list[int]] = {}
    for i, p in enumerate(problems):
        buckets.setdefault(_shape_key(p, p.y), []).append(i)
    masks: list = [None] * len(problems)
    for idx in buckets.values():
        for i, mask in zip(idx, prune_stack(ScoreStack([problems[i] for i in idx]))):
            masks[i] = mask
    return masks


class ScoreBuffer:
    """Per-layer tensors [K, *shape] for K problems, all views of one flat leaf tensor (`flat`).

    The flat tensor is padded to a multiple of 64 entries. Why: the optimiser's elementwise
    update runs vector code on all but the last few entries of a tensor, and the scalar code for
    those can round differently in the last bit. With the remainder in the padding, every
    problem's entries take the vector path whatever its batch mates are.
    """

    def __init__(self, K: int, shapes: Sequence[Sequence[int]], device, fill: float = 0.0):
        self.shapes = [(K, *s) for s in shapes]
        self.sizes = [math.prod(s) for s in self.shapes]
        total = sum(self.sizes)
        self.sizes.append(-total % _VECTOR)
        self.flat = torch.full((total + self.sizes[-1],), float(fill), device=device)
        self.flat[total:] = 0.0
        self.flat.requires_grad_(True)

    def views(self, flat: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The per-layer views of `flat` (default: the scores), made afresh for every step's graph."""
        parts = (self.flat if flat is None else flat).split(self.sizes)
        return [v.view(s) for v, s in zip(parts, self.shapes)]


class ScoreStack:
    """K problems of one shape, their frozen hosts and training splits stacked for score training.

    Attributes:
        problems: the K problems.
        weights, biases: per layer the hosts' values [K, out, in] and [K, out], detached (the
            hosts themselves are never touched).
        x, y: the training splits [K, N, ...].
    """

    def __init__(self, problems: Sequence[PruneProblem]):
        self.problems = list(problems)
        first = self.problems[0]
        self.kind, self.device, self.n_out = first.task.kind, first.device, first.task.n_out
        depth = len(first.model.layers)
        self.weights = [torch.stack([leaf(p.model.layers[l], "weight").detach() for p in self.problems])
                        for l in range(depth)]
        self.biases = [torch.stack([leaf(p.model.layers[l], "bias").detach() for p in self.problems])
                       for l in range(depth)]
        self.x = torch.stack([p.x for p in self.problems])
        self.y = torch.stack([p.y for p in self.problems])

    @property
    def K(self) -> int:
        return len(self.problems)

    def buffer(self, shapes: Sequence[Sequence[int]], fill: float = 0.0) -> ScoreBuffer:
        """Trainable tensors [K, *shape], one per shape, in one padded flat leaf."""
        return ScoreBuffer(self.K, shapes, self.device, fill)

    def readout_scales(self) -> ScoreBuffer | None:
        """The learned per-class scales of the readout, [K, n_out] ones; None for regression."""
        return self.buffer([(self.n_out,)], 1.0) if self.kind == "classification" else None

    def batches(self, batch_size: int):
        """One pass over every problem's training split, each shuffled with its own generator
        (the draw `PruneProblem.batches` makes); yields (x [K, B, in], y [K, B, ...])."""
        n = self.x.shape[1]
        order = torch.stack([torch.randperm(n, generator=p.generator) for p in self.problems]).to(self.device)
        rows = torch.arange(self.K, device=self.device)[:, None]
        xe, ye = self.x[rows, order], self.y[rows, order]
        for start in range(0, n, batch_size):
            yield xe[:, start:start + batch_size], ye[:, start:start + batch_size]

    def forward(self, x: torch.Tensor, wmasks: Sequence[torch.Tensor],
                bmasks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The K hosts under (float, differentiable) masks on x [K, B, in]; [K, B, out]."""
        ws = [w * m for w, m in zip(self.weights, wmasks)]
        bs = self.biases if bmasks is None else [b * m for b, m in zip(self.biases, bmasks)]
        return stacked_forward(x, ws, bs)

    def loss(self, out: torch.Tensor, y: torch.Tensor, class_scale: torch.Tensor | None = None) -> torch.Tensor:
        """The sum over the K problems of each one's task loss on its outputs seen through the
        readout of `OutputScale`: regression, each output times its least-squares scale on the
        batch; classification, the logits over their batch RMS times `class_scale` [K, C]. The
        batch scales are detached, so each problem's gradient is its own loss's."""
        f = out.detach()
        if self.kind == "classification":
            out = out * inverse_rms(f)[:, None] * class_scale[:, None]
        else:
            out = out * regression_scale(f, y)[:, None]
        return task_loss(self.kind, out, y).sum()
