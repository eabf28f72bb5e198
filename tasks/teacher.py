"""Random sparse teacher networks of tunable difficulty: the teacher-*@1 tasks.

A teacher is a ReLU network drawn from its own seed (never from a run seed): `depth` weight
layers, `width` neurons in every hidden layer, each hidden neuron reading exactly `fan_in`
neurons of the layer below, and a dense readout (every output reads every neuron of the last
hidden layer). Its function is the task: the outputs themselves (regression) or their argmax
(classification). The ticket is the teacher itself, with identity layers after its last hidden
layer where the host is deeper; its size, fan_in x width per hidden layer plus the readout, is
the difficulty knob. docs/design-notes.md lists the configurations and their ticket densities.

Every neuron is alive: its bias puts it at a share of the reference sample drawn in [0.4, 0.6],
and a fresh sample must find it active on 30-70% of the inputs; every output must vary with the
inputs, and each class must win a fair share. A draw that fails is redrawn from the same
generator, at most TRIES times, so a seed always gives the same teacher.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from plantbench.errors import ParameterError, PlantbenchError
from plantbench.task import Kind, Target, Task, register_task

TRIES = 20  # draws before giving up on a seed
REF_SAMPLES = 4096  # inputs that place the biases, and as many that check the draw
SET_SHARE = (0.4, 0.6)  # each neuron's active share on the reference sample, drawn uniformly
ALIVE = (0.3, 0.7)  # the active share every hidden neuron must have on a fresh sample
MAGNITUDE = (0.5, 1.5)  # |weight| before normalisation: no ticket weight is negligible
MIN_OUTPUT_STD = 0.5  # outputs are scaled to std 1 on the reference sample
MIN_CLASS_SHARE = 0.5  # of the even share 1 / n_out, on the fresh sample


class TeacherError(PlantbenchError):
    """No teacher meets the aliveness rule within TRIES draws of its seed."""


@dataclass(frozen=True)
class TeacherSpec:
    """What a teacher is drawn from.

    Attributes:
        n_in, n_out: inputs, and outputs (classes for classification).
        width: neurons per hidden layer.
        fan_in: inputs of every hidden neuron; the readout is dense.
        depth: weight layers (at least 2: one hidden layer and the readout).
        kind: "regression" (the outputs) or "classification" (their argmax).
        noise: Gaussian std of the regression targets, or the exact fraction of labels moved to
            the second-best class.
        seed: the teacher's own seed; every weight and bias comes from it.
    """

    n_in: int
    n_out: int
    width: int
    fan_in: int
    depth: int
    kind: Kind
    noise: float
    seed: int

    def check(self) -> TeacherSpec:
        """The spec itself, or a ParameterError naming the field that cannot work."""
        if self.kind not in ("regression", "classification"):
            raise ParameterError("kind", "expected regression or classification", self.kind)
        for name in ("n_in", "n_out", "width", "fan_in"):
            if getattr(self, name) < 1:
                raise ParameterError(name, "must be at least 1", getattr(self, name))
        if self.depth < 2:
            raise ParameterError("depth", "a teacher needs a hidden layer: at least 2 weight layers", self.depth)
        below = min(self.n_in, self.width) if self.depth > 2 else self.n_in
        if self.fan_in > below:
            raise ParameterError("fan_in", "cannot exceed the neurons of the layer below", self.fan_in)
        if self.width * self.fan_in < self.n_in:
            raise ParameterError("fan_in", f"{self.width} neurons reading {self.fan_in} each miss some of the "
                                 f"{self.n_in} inputs", self.fan_in)
        if self.kind == "classification" and self.n_out < 2:
            raise ParameterError("n_out", "classification needs at least 2 classes", self.n_out)
        if not 0 <= self.noise < (1 if self.kind == "classification" else float("inf")):
            raise ParameterError("noise", "out of range", self.noise)
        return self


def draw_teacher(spec: TeacherSpec) -> Target:
    """The teacher of this spec, drawn from its seed alone: the same spec gives the same teacher."""
    g = torch.Generator().manual_seed(spec.check().seed)
    why = "no draw"
    for _ in range(TRIES):
        target = _attempt(spec, g)
        why = "a neuron without spread" if target is None else fault(spec, target, uniform(REF_SAMPLES, spec.n_in, g))
        if why is None:
            return target
    raise TeacherError(f"teacher seed {spec.seed}: no live teacher in {TRIES} draws (last: {why})")


def uniform(n: int, n_in: int, g: torch.Generator) -> torch.Tensor:
    """n inputs from U[-1, 1]^n_in in float64, as the tasks sample them."""
    return torch.rand(n, n_in, generator=g, dtype=torch.float64).mul_(2).sub_(1)


def active_shares(target: Target, x: torch.Tensor) -> list[torch.Tensor]:
    """Per hidden layer, the share of the inputs x on which each neuron is active."""
    shares, h = [], x.double()
    for w, b in zip(target.weights[:-1], target.biases[:-1]):
        h = torch.relu(h @ torch.as_tensor(w).T + torch.as_tensor(b))
        shares.append((h > 0).double().mean(0))
    return shares


def fault(spec: TeacherSpec, target: Target, x: torch.Tensor) -> str | None:
    """Why the teacher breaks the aliveness rule on inputs x, or None when it keeps it."""
    lo, hi = ALIVE
    for l, share in enumerate(active_shares(target, x), start=1):
        if ((share < lo) | (share > hi)).any():
            return f"a neuron of layer {l} is active on {float(share.min()):.2f}..{float(share.max()):.2f} of the inputs"
    y = target.forward(x)
    if (y.std(0) < MIN_OUTPUT_STD).any():
        return f"an output varies by only {float(y.std(0).min()):.3g}"
    if spec.kind == "classification":
        share = torch.bincount(y.argmax(1), minlength=spec.n_out).double() / len(x)
        if share.min() < MIN_CLASS_SHARE / spec.n_out:
            return f"a class wins only {float(share.min()):.3f} of the inputs"
    return None


def _attempt(spec: TeacherSpec, g: torch.Generator) -> Target | None:
    """One draw: sparse layers with biases set on a reference sample, then the readout."""
    h = uniform(REF_SAMPLES, spec.n_in, g)
    weights, biases = [], []
    for _ in range(spec.depth - 1):
        w = _sparse(h.shape[1], spec.width, spec.fan_in, g)
        z = h @ w.T
        lo, hi = SET_SHARE
        share = lo + (hi - lo) * torch.rand(spec.width, generator=g, dtype=torch.float64)
        b = _split(z, share)
        sd = (z + b).std(0)
        if (sd <= 0).any():
            return None
        # Unit pre-activation std per neuron: a positive rescaling keeps the neuron's on/off
        # pattern and keeps deep teachers at one scale.
        w, b = w / sd[:, None], b / sd
        h = torch.relu(h @ w.T + b)
        weights.append(w)
        biases.append(b)
    w = _signed(torch.ones(spec.n_out, spec.width, dtype=torch.bool), g)
    y = h @ w.T
    sd = y.std(0)
    if (sd <= 0).any():
        return None
    w, b = w / sd[:, None], -y.mean(0) / sd
    if spec.kind == "classification":
        b = b + _balance(y / sd + b)
    weights.append(w)
    biases.append(b)
    return Target(tuple(t.numpy() for t in weights), tuple(t.numpy() for t in biases))


def _sparse(n_below: int, n_above: int, k: int, g: torch.Generator) -> torch.Tensor:
    """Weights [n_above, n_below] with exactly k nonzeros per row and at least one per column.

    Each neuron below is first given one reader (neurons below in random order, dealt to the
    neurons above in random order); every row is then filled up to k with random distinct
    columns. Dealing gives a row at most ceil(n_below / n_above) <= k columns.
    """
    mask = torch.zeros(n_above, n_below, dtype=torch.bool)
    below, above = torch.randperm(n_below, generator=g), torch.randperm(n_above, generator=g)
    mask[above[torch.arange(n_below) % n_above], below] = True
    for i in range(n_above):
        free = torch.nonzero(~mask[i])[:, 0]
        need = k - int(mask[i].sum())
        mask[i, free[torch.randperm(len(free), generator=g)[:need]]] = True
    return _signed(mask, g)


def _signed(mask: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random signs times magnitudes from MAGNITUDE on the mask, zero elsewhere."""
    lo, hi = MAGNITUDE
    size = lo + (hi - lo) * torch.rand(mask.shape, generator=g, dtype=torch.float64)
    sign = torch.randint(0, 2, mask.shape, generator=g).double().mul_(2).sub_(1)
    return torch.where(mask, sign * size, torch.zeros_like(size))


def _split(z: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """Per column j, the bias b_j that leaves z[:, j] + b_j > 0 on the share of rows nearest share_j.

    The cut lies halfway between two distinct neighbouring values of the column, so that a
    block of equal values (all of a neuron's inputs off gives z = 0 on many rows) falls wholly
    on one side, and the rows just above the cut are clearly active.
    """
    n = len(z)
    zs = z.sort(0).values
    above = (n - 1 - torch.arange(n - 1, dtype=torch.float64)) / n  # share above a cut after row i
    cost = (above[:, None] - share[None, :]).abs()
    cost = torch.where(zs[1:] > zs[:-1], cost, torch.full_like(cost, float("inf")))
    i = cost.argmin(0)
    cols = torch.arange(z.shape[1])
    return -(zs[i, cols] + zs[i + 1, cols]) / 2


def _balance(logits: torch.Tensor, steps: int = 200) -> torch.Tensor:
    """Bias shifts that bring every class's argmax share on the sample near 1 / C.

    A class's share only grows with its own shift, so shifting each class by the gap to the even
    share, in shrinking steps, settles near balance.
    """
    C = logits.shape[1]
    shift = torch.zeros(C, dtype=torch.float64)
    for t in range(steps):
        share = torch.bincount((logits + shift).argmax(1), minlength=C).double() / len(logits)
        shift += (1 / C - share) * 4 / (1 + t / 10)
    return shift


class Teacher(Task):
    """A teacher-* task; subclasses set `teacher_spec` (and the name)."""

    version = 1
    teacher_spec: TeacherSpec

    def __init__(self):
        s = self.teacher_spec.check()
        self.kind, self.n_in, self.n_out, self.min_depth, self.noise = s.kind, s.n_in, s.n_out, s.depth, s.noise

    @functools.cached_property
    def teacher(self) -> Target:
        """The teacher at its own depth (drawn on first use)."""
        return draw_teacher(self.teacher_spec)

    def target(self, depth: int) -> Target:
        self.check_depth(depth)
        t, width = self.teacher, self.teacher_spec.width
        # Hidden activations are >= 0, so an identity layer with ReLU passes them on exactly.
        extra = depth - t.depth
        weights = (*t.weights[:-1], *(np.eye(width) for _ in range(extra)), t.weights[-1])
        biases = (*t.biases[:-1], *(np.zeros(width) for _ in range(extra)), t.biases[-1])
        return Target(weights, biases)

    def function(self, x: torch.Tensor) -> torch.Tensor:
        y = self.teacher.forward(x.double())
        return y.argmax(1) if self.kind == "classification" else y

    def _noisy(self, x, g):
        y = self.teacher.forward(x.double())
        if self.kind == "regression":
            return (y + self.noise * torch.randn(y.shape, generator=g, dtype=torch.float64)).float()
        # Exactly round(noise * n) labels move to the second-best class, as in circle-noise*.
        top2 = y.topk(2, dim=1).indices
        moved = torch.randperm(len(x), generator=g)[: int(round(self.noise * len(x)))]
        labels = top2[:, 0].clone()
        labels[moved] = top2[moved, 1]
        return labels


# name -> spec; the ladders teacher-w8/w16/w32 (width) and teacher-w16/k4/k8 (fan-in) differ
# in one knob each, for the breaking-point plots.
CONFIGS = {
    "teacher-easy": TeacherSpec(n_in=2, n_out=1, width=4, fan_in=2, depth=2, kind="regression", noise=0.01, seed=1),
    "teacher-w8": TeacherSpec(n_in=16, n_out=2, width=8, fan_in=2, depth=4, kind="regression", noise=0.01, seed=2),
    "teacher-w16": TeacherSpec(n_in=16, n_out=2, width=16, fan_in=2, depth=4, kind="regression", noise=0.01, seed=3),
    "teacher-w32": TeacherSpec(n_in=16, n_out=2, width=32, fan_in=2, depth=4, kind="regression", noise=0.01, seed=4),
    "teacher-k4": TeacherSpec(n_in=16, n_out=2, width=16, fan_in=4, depth=4, kind="regression", noise=0.01, seed=5),
    "teacher-k8": TeacherSpec(n_in=16, n_out=2, width=16, fan_in=8, depth=4, kind="regression", noise=0.01, seed=6),
    "teacher-cls-easy": TeacherSpec(n_in=2, n_out=3, width=8, fan_in=2, depth=2, kind="classification",
                                    noise=0.01, seed=7),
    "teacher-cls": TeacherSpec(n_in=16, n_out=4, width=16, fan_in=2, depth=4, kind="classification",
                               noise=0.01, seed=8),
}


def describe(s: TeacherSpec) -> str:
    what = f"argmax of {s.n_out} outputs" if s.kind == "classification" else f"{s.n_out} outputs"
    noise = f"{s.noise:g} of labels moved" if s.kind == "classification" else f"noise std {s.noise:g}"
    return (f"random sparse ReLU teacher: {s.n_in} inputs, depth {s.depth}, width {s.width}, fan-in {s.fan_in}, "
            f"dense readout; {what}, {noise}; min host depth {s.depth}, width {s.width}")


for _name, _spec in CONFIGS.items():
    register_task(type(_name.title().replace("-", ""), (Teacher,), {
        "name": _name, "teacher_spec": _spec, "description": describe(_spec)}))
