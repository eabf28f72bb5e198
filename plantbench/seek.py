"""The seek step: build a pruner's PruneProblem from a seed and run the pruner on it.

The planted network and the test split are dropped before the pruner is called; the judge
re-plants from the same seed (planting is deterministic and takes milliseconds).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .mask import validate_mask
from .network import HostMLP, bias_name, weight_name
from .plant import plant_task
from .pruner import PruneProblem, Pruner, TaskInfo
from .seeding import generator
from .task import Task
from .train import Protocol


def task_info(task: Task) -> TaskInfo:
    return TaskInfo(task.name, task.version, task.kind, task.n_in, task.n_out, task.metric.name)


def make_problem(task: Task, depth: int, widths: int | Sequence[int], seed: int, density: float,
                 device: str | torch.device = "cpu", protocol: Protocol | None = None) -> PruneProblem:
    """The pruner's view of one run: a copy of the planted host and the training split only."""
    net = plant_task(task, depth, widths, seed, device=device)
    model = HostMLP(net.weights, net.biases)
    data = task.dataset(seed)
    x, y = data.x_train.to(device), data.y_train.to(device)
    del net, data  # the ticket and the test split stay out of the pruner's reach
    return PruneProblem(model, x, y, density, task_info(task), generator(seed, "pruner"), device,
                        protocol or Protocol())


@dataclass
class SeekResult:
    mask: dict[str, torch.Tensor]  # validated, bool, on the CPU
    seconds: float
    epochs: int


def seek(pruner: Pruner, problem: PruneProblem) -> SeekResult:
    """Run the pruner and check its mask at the boundary (MaskError names the fault)."""
    shapes = {n: tuple(p.shape) for n, p in problem.model.prunable()}
    bias_shapes = {bias_name(l): (lin.out_features,) for l, lin in enumerate(problem.model.layers)}
    start = time.perf_counter()
    mask = pruner.prune(problem)
    seconds = time.perf_counter() - start
    checked = validate_mask(mask, shapes, bias_shapes, problem.density)
    return SeekResult(checked, seconds, problem.epochs_used)


def split_mask(mask: dict[str, torch.Tensor], depth: int) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """Weights per layer, and biases per layer (None when the mask keeps every bias)."""
    weights = [mask[weight_name(l)] for l in range(depth)]
    if not any(bias_name(l) in mask for l in range(depth)):
        return weights, None
    biases = [mask.get(bias_name(l), torch.ones(weights[l].shape[0], dtype=torch.bool)) for l in range(depth)]
    return weights, biases
