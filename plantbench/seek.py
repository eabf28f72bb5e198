"""The seek step: build a pruner's PruneProblem from a seed and run the pruner on it.

The planted network and the test split are dropped before the pruner is called; the judge
re-plants from the same seed (planting is deterministic and takes milliseconds). A sweep runs
the pruner in its own process (plantbench.sandbox): problem_payload is all that process gets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import MaskError
from .mask import validate_mask
from .network import HostMLP, bias_name, weight_name
from .plant import plant_task
from .pruner import PruneProblem, Pruner, TaskInfo
from .seeding import derive_seed, generator
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


def problem_payload(task: Task, depth: int, widths: int | Sequence[int], seed: int, density: float,
                    device: str = "cpu", protocol: Protocol | None = None) -> dict:
    """What a pruner's process receives for one run: exactly what its PruneProblem holds.

    The host's parameters at their planted initialisation and the training split (as numpy
    arrays), the density, the task's public facts, the protocol, the device and the seed of
    the pruner's own generator. Not the run seed, the ticket, the output scale or the test split.
    """
    net = plant_task(task, depth, widths, seed, device=device)  # on the device, as make_problem plants
    data = task.dataset(seed)
    payload = {"weights": [w.cpu().numpy() for w in net.weights], "biases": [b.cpu().numpy() for b in net.biases],
               "x": data.x_train.numpy(), "y": data.y_train.numpy(), "density": float(density),
               "task": task_info(task), "generator_seed": derive_seed(seed, "pruner"), "device": str(device),
               "protocol": protocol or Protocol()}
    del net, data
    return payload


def problem_from_payload(p: dict) -> PruneProblem:
    """The PruneProblem of a payload, equal to make_problem's for the same run."""
    device = p["device"]
    model = HostMLP([torch.from_numpy(w).to(device) for w in p["weights"]],
                    [torch.from_numpy(b).to(device) for b in p["biases"]])
    g = torch.Generator()
    g.manual_seed(p["generator_seed"])
    return PruneProblem(model, torch.from_numpy(p["x"]).to(device), torch.from_numpy(p["y"]).to(device),
                        p["density"], p["task"], g, device, p["protocol"])


def mask_sizes(payload: dict) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """The weight shapes and the bias shapes of a payload's host, by mask key."""
    shapes = {weight_name(l): tuple(w.shape) for l, w in enumerate(payload["weights"])}
    return shapes, {bias_name(l): (w.shape[0],) for l, w in enumerate(payload["weights"])}


def seek_in(box, payload: dict, timeout: float) -> SeekResult:
    """Run the pruner in its process (a sandbox.Sandbox) and check what comes back at the boundary.

    Raises MaskError for a bad mask, SeekFailure for a pruner that failed in its process.
    """
    shapes, bias_shapes = mask_sizes(payload)
    all_shapes = {**shapes, **bias_shapes}
    outcome = box.seek(payload, {k: int(np.prod(s)) for k, s in all_shapes.items()}, timeout)
    if outcome.error is not None:
        raise SeekFailure(outcome.error)
    mask = {k: torch.from_numpy(bits.reshape(all_shapes[k])) for k, bits in outcome.bits.items()}
    checked = validate_mask(mask, shapes, bias_shapes, payload["density"])
    return SeekResult(checked, outcome.seconds, outcome.epochs)


def seek_group_in(box, payloads: list[dict], timeout: float) -> list[SeekResult | Exception] | None:
    """Run the pruner's prune_group on several problems in one call of its process.

    Returns each problem's checked SeekResult, or its MaskError, in order; None when the call
    failed as a whole (the pruner raised, timed out or died), so that the caller can run the
    problems one by one and a fault fails only its own run.
    """
    shapes = [{**w, **b} for w, b in map(mask_sizes, payloads)]
    outcomes = box.seek_group(payloads, [{k: int(np.prod(s)) for k, s in sh.items()} for sh in shapes], timeout)
    if not isinstance(outcomes, list):
        return None
    results: list[SeekResult | Exception] = []
    for payload, sh, outcome in zip(payloads, shapes, outcomes):
        weights, biases = mask_sizes(payload)
        mask = {k: torch.from_numpy(bits.reshape(sh[k])) for k, bits in outcome.bits.items()}
        try:
            results.append(SeekResult(validate_mask(mask, weights, biases, payload["density"]), outcome.seconds,
                                      outcome.epochs))
        except MaskError as e:
            results.append(e)
    return results


class SeekFailure(Exception):
    """A pruner that failed in its own process; the message is its run's error, as recorded."""


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


def seek_group(pruner: Pruner, problems: list[PruneProblem]) -> list[SeekResult]:
    """Run the pruner's prune_group and check every mask at the boundary (MaskError names the
    first fault). Each result's seconds are the call's time shared equally among the problems."""
    start = time.perf_counter()
    masks = pruner.prune_group(list(problems))
    seconds = (time.perf_counter() - start) / max(1, len(problems))
    if not isinstance(masks, (list, tuple)) or len(masks) != len(problems):
        raise MaskError(f"prune_group must return a list of {len(problems)} masks, one per problem")
    results = []
    for problem, mask in zip(problems, masks):
        shapes = {n: tuple(p.shape) for n, p in problem.model.prunable()}
        bias_shapes = {bias_name(l): (lin.out_features,) for l, lin in enumerate(problem.model.layers)}
        results.append(SeekResult(validate_mask(mask, shapes, bias_shapes, problem.density), seconds,
                                  problem.epochs_used))
    return results


def split_mask(mask: dict[str, torch.Tensor], depth: int) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """Weights per layer, and biases per layer (None when the mask keeps every bias)."""
    weights = [mask[weight_name(l)] for l in range(depth)]
    if not any(bias_name(l) in mask for l in range(depth)):
        return weights, None
    biases = [mask.get(bias_name(l), torch.ones(weights[l].shape[0], dtype=torch.bool)) for l in range(depth)]
    return weights, biases
