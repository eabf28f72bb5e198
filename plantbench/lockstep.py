"""Train many problems' masked networks at once: the judge's stacked step for pruners that train.

A pruner handed a group of problems (Pruner.prune_group) trains all of them in one call of
`train_many`. Problems of one architecture, data shape and protocol advance in lockstep through
`train_stacked`, each in the batch order of its own generator, so a problem's result is the
one `PruneProblem.train` gives it alone and never depends on the problems beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from .errors import UsageError
from .network import bias_name, leaf, weight_name
from .train import train_stacked

if TYPE_CHECKING:
    from .pruner import PruneProblem


def train_many(problems: Sequence[PruneProblem], masks: Sequence[Mapping[str, torch.Tensor]], epochs: int,
               targets: Sequence[torch.Tensor | None] | None = None) -> None:
    """Train every problem's model in place under its mask, as `problem.train(mask, epochs, target)`
    does for each one, and in lockstep.

    Problems whose hosts, training splits, protocols and devices have the same shapes and
    settings train together in batched products; the others in as many such batches as they
    need. Every problem draws its batch order from its own generator, exactly as `train` does,
    and counts the epochs in its own `epochs_used`.

    Args:
        problems: the problems to train (each at most once).
        masks: one mask per problem (the `train` argument).
        epochs: epochs for every problem.
        targets: None, or one entry per problem: None (train on `y`) or the `targets` of `train`.
    """
    problems, masks = list(problems), list(masks)
    targets = [None] * len(problems) if targets is None else list(targets)
    if not len(masks) == len(targets) == len(problems):
        raise UsageError(f"train_many needs one mask and one target per problem, got {len(problems)} problems, "
                         f"{len(masks)} masks and {len(targets)} targets")
    if len({id(p) for p in problems}) != len(problems):
        raise UsageError("train_many got the same problem twice; train it in two calls")
    ys = [p.y if t is None else p._checked_targets(t) for p, t in zip(problems, targets)]
    buckets: dict[tuple, list[int]] = {}
    for i, (p, y) in enumerate(zip(problems, ys)):
        buckets.setdefault(_shape_key(p, y), []).append(i)
    for idx in buckets.values():
        _train_together([problems[i] for i in idx], [masks[i] for i in idx], [ys[i] for i in idx], int(epochs))


def _shape_key(problem: PruneProblem, y: torch.Tensor) -> tuple:
    """What must agree for problems to share one stacked call."""
    params = tuple(tuple(leaf(lin, name).shape) for lin in problem.model.layers for name in ("weight", "bias"))
    return (params, tuple(problem.x.shape), problem.x.dtype, tuple(y.shape), y.dtype, problem.device,
            problem.task.kind, problem.protocol)


def _train_together(problems: list[PruneProblem], masks: list, ys: list[torch.Tensor], epochs: int) -> None:
    """One train_stacked call for problems of one shape; kept entries take the trained values."""
    first = problems[0]
    depth, device = len(first.model.layers), first.device
    ws0 = [[leaf(lin, "weight") for lin in p.model.layers] for p in problems]
    bs0 = [[leaf(lin, "bias") for lin in p.model.layers] for p in problems]
    wm = [torch.stack([m[weight_name(l)].to(device).bool() for m in masks]) for l in range(depth)]
    bm = [torch.stack([_bias_mask(m, l, bs0[k][l]).to(device).bool() for k, m in enumerate(masks)])
          for l in range(depth)]
    ws = [torch.stack([w[l].detach() for w in ws0]) for l in range(depth)]
    bs = [torch.stack([b[l].detach() for b in bs0]) for l in range(depth)]
    x, y, generators = torch.stack([p.x for p in problems]), torch.stack(ys), [p.generator for p in problems]
    ws, bs = train_stacked(ws, bs, wm, bm, x, y, first.task.kind, first.protocol, generators, epochs=epochs)
    with torch.no_grad():
        for k, p in enumerate(problems):
            for l in range(depth):
                ws0[k][l].copy_(torch.where(wm[l][k], ws[l][k], ws0[k][l]))
                bs0[k][l].copy_(torch.where(bm[l][k], bs[l][k], bs0[k][l]))
            p.epochs_used += epochs


def _bias_mask(mask: Mapping[str, torch.Tensor], layer: int, bias: torch.Tensor) -> torch.Tensor:
    """A layer's bias mask; biases without a mask entry train."""
    entry = mask.get(bias_name(layer))
    return torch.ones_like(bias, dtype=torch.bool) if entry is None else entry
