"""The task contract: a data sampler, a metric and a hand-built sparse target network (the ticket)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .errors import ParameterError, RegistryError
from .metrics import ACCURACY, MSE, Metric
from .registry import Registry
from .seeding import generator

Kind = Literal["classification", "regression"]


@dataclass(frozen=True)
class Target:
    """A sparse MLP with a known function: ReLU after every layer but the last.

    Depth is the number of weight layers (nn.Linear modules). Weights are float64
    arrays shaped [out, in] as in nn.Linear; a zero entry is not part of the ticket.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    def __post_init__(self):
        if len(self.weights) != len(self.biases) or not self.weights:
            raise ValueError("a target needs one bias vector per weight matrix")
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise ValueError(f"layer {l}: weight {w.shape} and bias {b.shape} disagree")
            if l and w.shape[1] != self.weights[l - 1].shape[0]:
                raise ValueError(f"layer {l}: expects {w.shape[1]} inputs, previous layer has {self.weights[l - 1].shape[0]}")

    @property
    def depth(self) -> int:
        return len(self.weights)

    @property
    def sizes(self) -> list[int]:
        """Neuron counts per layer, input first."""
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def n_weights(self) -> int:
        return int(sum(np.count_nonzero(w) for w in self.weights))

    @property
    def n_biases(self) -> int:
        return int(sum(np.count_nonzero(b) for b in self.biases))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(torch.float64)
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ torch.as_tensor(w, device=h.device).T + torch.as_tensor(b, device=h.device)
            if l < self.depth - 1:
                h = torch.relu(h)
        return h


@dataclass(frozen=True)
class Dataset:
    """One seeded draw of a task's data, split into train and test."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device) -> Dataset:
        return Dataset(*(t.to(device) for t in (self.x_train, self.y_train, self.x_test, self.y_test)))


class Task(ABC):
    """A benchmark task. Subclass it in a module under tasks/ and register it with @register_task.

    Class attributes:
        name, version: results name the task as name@version; bump the version on any
            change to the data, the ticket or the planting.
        kind: "classification" (y holds class indices) or "regression" (y is [n, n_out]).
        n_in, n_out: input and output sizes (n_out is the class count for classification).
        min_depth: the shallowest ticket, in weight layers.
        noise: the noise level (label-flip probability or Gaussian std).
        image_shape: (height, width) when an input row is an image, which `plantbench show`
            then draws as one; None otherwise.
    """

    name: str
    version: int
    kind: Kind
    n_in: int
    n_out: int
    min_depth: int
    noise: float
    description: str = ""
    n_samples: int = 10_000
    test_fraction: float = 0.1
    max_depth: int = 64
    image_shape: tuple[int, int] | None = None

    @abstractmethod
    def target(self, depth: int) -> Target:
        """The ticket with `depth` weight layers."""

    @abstractmethod
    def function(self, x: torch.Tensor) -> torch.Tensor:
        """The noiseless target on inputs x [n, n_in]: class indices or values [n, n_out]."""

    @abstractmethod
    def _noisy(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Labels or values for x with the task's noise, drawn from g."""

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def metric(self) -> Metric:
        return ACCURACY if self.kind == "classification" else MSE

    def min_width(self, depth: int) -> int:
        """The narrowest host that can hold the ticket of this depth."""
        sizes = self.target(self.check_depth(depth)).sizes
        return max(sizes[1:-1], default=1)

    def check_depth(self, depth: int) -> int:
        if not self.min_depth <= depth <= self.max_depth:
            raise ParameterError("depth", f"task {self.name!r} needs {self.min_depth}..{self.max_depth} weight layers",
                                 depth)
        return depth

    def check_host(self, depth: int, width: int) -> None:
        """A host of `depth` weight layers and hidden `width` can hold this task's ticket, or ParameterError."""
        need = self.min_width(depth)
        if width < need:
            raise ParameterError("width", f"task {self.name!r} at depth {depth} needs a host at least {need} wide",
                                 width)

    def sample(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n fresh samples from g: x uniform on [-1, 1]^n_in (float32) and noisy targets."""
        x = torch.rand(n, self.n_in, generator=g, dtype=torch.float64).mul_(2).sub_(1).float()
        return x, self._noisy(x.double(), g)

    def dataset(self, seed: int) -> Dataset:
        """The seeded train/test split used by every run with this seed (on the CPU)."""
        x, y = self.sample(self.n_samples, generator(seed, "data"))
        n_test = int(round(self.n_samples * self.test_fraction))
        return Dataset(x[n_test:], y[n_test:], x[:n_test], y[:n_test])

    def chance(self, y_train: torch.Tensor, y_test: torch.Tensor) -> float:
        """The chance level: majority-class accuracy, or the variance of y (MSE of the mean)."""
        if self.kind == "classification":
            majority = torch.bincount(y_train, minlength=self.n_out).argmax()
            return float((y_test == majority).double().mean())
        return float((y_test.double() - y_train.double().mean(0)).pow(2).mean())


TASKS: Registry[Task] = Registry("task", "plantbench.tasks")
#: True while plantbench imports a user's task file (plantbench.taskfile), whose task is used for
#: one invocation and never registered.
_importing_task_file = False


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: registers one instance of the task under its name."""
    if _importing_task_file:
        raise RegistryError("a task file's task is not registered: remove @register_task (it is for the "
                            "tasks/ folder)")
    TASKS.register(cls.name, cls())
    return cls


def get_task(name: str) -> Task:
    return TASKS.get(name)


def host_task(name: str, depth: int, width: int) -> Task:
    """The task called `name`, checked against a host of this depth and width; errors name the parameter."""
    try:
        task = get_task(name)
    except RegistryError as e:
        raise ParameterError("task", str(e), name) from None
    task.check_host(depth, width)
    return task


# --- builders shared by the ticket constructions --------------------------------------------


@dataclass(frozen=True)
class KnotFit:
    """A one-hidden-layer ReLU interpolant of a 1-D function (Plant 'n' Seek's knot layer).

    Hidden neuron k computes relu(sign_k * (x - knot_k)); the output is
    sum_k out_w[k] * hidden_k + out_b, equal to the piecewise-linear interpolant of fn
    through the knots for x >= knots[0].
    """

    in_w: np.ndarray
    in_b: np.ndarray
    out_w: np.ndarray
    out_b: float


def knot_fit(fn, knots: np.ndarray, signs: np.ndarray) -> KnotFit:
    """Piecewise-linear fit through `knots` with hidden neurons of alternating orientation.

    With slopes m_k between knots (the last segment extended by one spacing) and
    kinks d_k = m_k - m_{k-1}, g(x) = f(s_0) + m_0 (x - s_0) + sum_k d_k relu(x - s_k).
    A neuron of sign -1 holds relu(s_k - x) = relu(x - s_k) - (x - s_k), so its kink moves
    a linear term onto the first neuron, which is relu(x - s_0) = x - s_0 on the domain.
    Kinks that vanish in exact arithmetic (a linear fn) are set to exactly zero, so the
    ticket holds no weights of rounding-noise size.
    """
    s = np.asarray(knots, dtype=np.float64)
    p = np.asarray(signs, dtype=np.float64).copy()
    p[0] = 1.0  # the first neuron carries the linear term
    nodes = np.append(s, s[-1] + (s[-1] - s[-2]))
    vals = np.array([fn(v) for v in nodes], dtype=np.float64)
    slopes = np.diff(vals) / np.diff(nodes)
    kinks = np.diff(slopes)
    kinks[np.abs(kinks) <= 1e-9 * max(1.0, np.abs(slopes).max())] = 0.0
    flipped = p[1:] < 0
    out_w = np.concatenate([[slopes[0] + kinks[flipped].sum()], kinks])
    out_b = vals[0] - float((kinks[flipped] * (s[1:][flipped] - s[0])).sum())
    return KnotFit(in_w=p, in_b=-p * s, out_w=out_w, out_b=out_b)


def alternating(n: int, last: float | None = None) -> np.ndarray:
    """Signs +1, -1, +1, ... of length n, optionally forcing the last one."""
    p = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    if last is not None:
        p[-1] = last
    return p


def identity_layers(n: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.eye(n), np.zeros(n)) for _ in range(count)]


def ceil_int(x: float) -> int:
    return int(math.ceil(x - 1e-12))
