"""The Pruner contract: what a user implements, and the PruneProblem it is handed."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch

from .errors import UsageError
from .lockstep import train_many
from .mask import Mask
from .mask import budget as weight_budget
from .network import HostMLP
from .schedules import exponential
from .train import Protocol, task_loss


@dataclass(frozen=True)
class TaskInfo:
    """The public facts about a task: all a pruner may know."""

    name: str
    version: int
    kind: str
    n_in: int
    n_out: int
    metric: str

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"


class PruneProblem:
    """Everything a pruner gets: its own copy of the host, the training split and a budget.

    It holds no reference to the planted ticket, the test split or the planting seed.

    Attributes:
        model: the host at its planted initialisation (a HostMLP the pruner may change).
        x, y: the training inputs and targets, on `device`.
        density: the fraction of weights to keep; `budget` is the number of weights it allows.
        task: public facts about the task (TaskInfo).
        generator: a seeded CPU torch.Generator for the pruner's own randomness.
        device: where the model and data live.
        protocol: the training protocol `train` uses.
        epochs_used: epochs spent in `train` so far (reported as the pruner's cost).
    """

    def __init__(self, model: HostMLP, x: torch.Tensor, y: torch.Tensor, density: float,
                 task: TaskInfo, generator: torch.Generator, device: torch.device | str,
                 protocol: Protocol):
        self.model = model
        self.x = x
        self.y = y
        self.density = float(density)
        self.task = task
        self.generator = generator
        self.device = torch.device(device)
        self.protocol = protocol
        self.epochs_used = 0

    @property
    def budget(self) -> int:
        """The number of weights the density allows: round(density x prunable weights)."""
        return weight_budget(self.density, sum(p.numel() for _, p in self.model.prunable()))

    @contextmanager
    def frozen(self) -> Iterator[HostMLP]:
        """Freeze the host for a block that trains something else (scores, masks) through it.

        Every parameter of `model` stops requiring grad inside the block, so no gradient is
        computed for the host or reaches it, and gets its own requires_grad flag back on exit,
        also when the block raises. The values are not touched. Yields the model.
        """
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield self.model
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)

    def sensitivity(self, x: torch.Tensor, y: torch.Tensor,
                    mask: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """SNIP's connection sensitivity |dL/dm| of every prunable weight on the batch (x, y).

        The loss is taken on the network pruned by `mask` (all weights kept if None) and
        differentiated in a multiplicative float mask m at that mask, which gives |w x g| with
        g the loss gradient at the pruned weights w x m. The host is frozen meanwhile.
        """
        named = list(self.model.prunable())
        mask = Mask.ones(self.model) if mask is None else mask
        gates = {n: mask[n].detach().to(device=p.device, dtype=p.dtype).clone().requires_grad_(True) for n, p in named}
        with self.frozen() as model:
            loss = self.loss(model(x, mask=gates), y)
            grads = torch.autograd.grad(loss, list(gates.values()))
        return {n: g.abs() for n, g in zip(gates, grads)}

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The task's training loss: cross-entropy for classification, MSE for regression."""
        return task_loss(self.task.kind, output, target)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n training points drawn without replacement with `generator` (a pruning batch)."""
        total = self.x.shape[0]
        idx = torch.randperm(total, generator=self.generator)[: max(1, min(int(n), total))].to(self.x.device)
        return self.x[idx], self.y[idx]

    def batches(self, batch_size: int, shuffle: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over the training split in batches, shuffled with `generator`."""
        n = self.x.shape[0]
        order = torch.randperm(n, generator=self.generator) if shuffle else torch.arange(n)
        order = order.to(self.x.device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield self.x[idx], self.y[idx]

    def train(self, mask: Mapping[str, torch.Tensor], epochs: int, targets: torch.Tensor | None = None) -> None:
        """Train `model` in place under `mask` with the standard protocol (Adam, fresh state).

        Pruned weights get no gradient and keep their values; biases without a mask entry train.

        Args:
            targets: what to fit instead of the labels `y`, one row per training point (for
                distillation). Classification: [N, n_out] class probabilities (rows of
                non-negative numbers summing to 1), fitted by cross-entropy against the
                probability vector. Regression: real values of `y`'s shape, fitted by MSE.
                None (the default) trains on `y`.
        """
        train_many([self], [mask], epochs, None if targets is None else [targets])

    def _checked_targets(self, targets) -> torch.Tensor:
        """`targets` as a float tensor on `device`, or a UsageError naming what is wrong."""
        if not torch.is_tensor(targets) or not targets.is_floating_point():
            raise UsageError(f"targets must be a float tensor, got {getattr(targets, 'dtype', type(targets).__name__)}")
        n = self.x.shape[0]
        want = (n, self.task.n_out) if self.task.kind == "classification" else tuple(self.y.shape)
        if tuple(targets.shape) != want:
            raise UsageError(f"targets have shape {tuple(targets.shape)}, expected {want}")
        t = targets.detach().to(device=self.device, dtype=self.x.dtype)
        if not bool(torch.isfinite(t).all()):
            raise UsageError("targets contain NaN or inf")
        if self.task.kind == "classification":
            if bool((t < 0).any()) or not torch.allclose(t.sum(-1), torch.ones_like(t[:, 0]), atol=1e-4):
                raise UsageError("classification targets must be class probabilities (non-negative rows summing to 1)")
        return t


class Pruner(ABC):
    """Subclass this in one file and implement `prune`.

    `name` is the leaderboard name. Keyword arguments of __init__ can be set from the
    command line with --pruner-arg key=value and are recorded with every result.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def prune(self, problem: PruneProblem) -> Mask:
        """Return a Mask keeping at most `problem.budget` weights (round(density x weights))."""

    def prune_group(self, problems: list[PruneProblem]) -> list[Mask]:
        """One mask per problem, in order: a sweep hands a pruner all of a group's problems at once.

        The default prunes them one by one with `prune`. A pruner that trains may override it to
        train the problems in lockstep (plantbench.train_many); each problem's mask must be the
        one `prune` would give it alone, whatever the other problems are.
        """
        return [self.prune(p) for p in problems]


class ScorePruner(Pruner):
    """A pruner that scores weights; the base keeps the top-k.

    With `rounds` > 1 it prunes iteratively on the exponential schedule density^(r/rounds),
    re-scoring the surviving weights each round (scores of pruned weights are ignored).
    Subclasses implement `score(problem, mask)`, where `mask` is the current Mask, and may
    set `scope` to "layer" for per-layer budgets.
    """

    scope: ClassVar[str] = "global"

    def __init__(self, rounds: int = 1):
        if int(rounds) < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self.rounds = int(rounds)

    @abstractmethod
    def score(self, problem: PruneProblem, mask: Mask) -> dict[str, torch.Tensor]:
        """Scores for every prunable weight; higher means keep."""

    def prune(self, problem: PruneProblem) -> Mask:
        mask = Mask.ones(problem.model)
        for r in range(1, self.rounds + 1):
            density = exponential(problem.density, r, self.rounds)
            mask = Mask.top_k(self.score(problem, mask), density, scope=self.scope, within=mask)
        return mask


class MultiShot(Pruner):
    """Iterative pruning with rewinding around any score pruner (IMP when the scores are magnitudes).

    Each of `rounds` rounds trains the model for `epochs` epochs under the current mask, scores,
    prunes to density^(r/rounds) among the survivors and resets the weights to the planted
    initialisation; `problem.train` starts a fresh optimiser every round.
    """

    def __init__(self, inner: ScorePruner, rounds: int = 10, epochs: int = 5):
        if int(rounds) < 1 or int(epochs) < 0:
            raise ValueError(f"need rounds >= 1 and epochs >= 0, got rounds={rounds}, epochs={epochs}")
        self.inner = inner
        self.rounds = int(rounds)
        self.epochs = int(epochs)

    def prune(self, problem: PruneProblem) -> Mask:
        initial = copy.deepcopy(problem.model.state_dict())
        mask = Mask.ones(problem.model)
        for r in range(1, self.rounds + 1):
            problem.train(mask, self.epochs)
            scores = self.inner.score(problem, mask)
            density = exponential(problem.density, r, self.rounds)
            mask = Mask.top_k(scores, density, scope=self.inner.scope, within=mask)
            problem.model.load_state_dict(initial)
        return mask

    def prune_group(self, problems: list[PruneProblem]) -> list[Mask]:
        """`prune` for every problem, the rounds' training of all problems in lockstep."""
        initials = [copy.deepcopy(p.model.state_dict()) for p in problems]
        masks = [Mask.ones(p.model) for p in problems]
        for r in range(1, self.rounds + 1):
            train_many(problems, masks, self.epochs)
            for i, (problem, initial) in enumerate(zip(problems, initials)):
                scores = self.inner.score(problem, masks[i])
                density = exponential(problem.density, r, self.rounds)
                masks[i] = Mask.top_k(scores, density, scope=self.inner.scope, within=masks[i])
                problem.model.load_state_dict(initial)
        return masks


class OutputScale:
    """Per-output scales between a masked network and the task loss, for pruners that train
    scores on the frozen host (edge-popup and GEM-Miner use its stacked form, `ScoreStack.loss`).

    The planted host's outputs are the target times a tiny c, so a loss on the raw outputs
    cannot see which mask computes the target. Regression: the least-squares scale per output
    on each batch (detached). Classification: logits divided by their batch RMS per class
    (detached), times per-class scales that the pruner learns (`params()`). An output that is
    identically zero on a batch gets the mean scale of the live ones, so gradient still reaches
    the scores that could revive it.
    """

    def __init__(self, kind, n_out, device):
        self.kind = kind
        self.scale = torch.ones(n_out, device=device, requires_grad=kind == "classification")

    def params(self):
        return [self.scale] if self.kind == "classification" else []

    def __call__(self, out, y):
        f = out.detach()
        if self.kind == "classification":
            rms = f.pow(2).mean(0).sqrt()
            return out * _fill_dead_outputs(1.0 / rms.clamp_min(1e-30), rms > 0) * self.scale
        den = f.pow(2).sum(0)
        s = (f * y).sum(0) / den.clamp_min(1e-30)
        return out * _fill_dead_outputs(s, den > 0)


def _fill_dead_outputs(scale, live):
    """Outputs that are identically zero on the batch get the mean |scale| of the live ones
    (1 if none is live), so that gradient still reaches the scores that could revive them."""
    fill = scale[live].abs().mean() if bool(live.any()) else torch.ones((), dtype=scale.dtype, device=scale.device)
    return torch.where(live, scale, fill)
