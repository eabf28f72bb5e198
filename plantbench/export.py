"""Export a planted network and its data to a plain .npz that any framework reads without pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .fileio import atomic_savez
from .metrics import accuracy, mse
from .plant import PlantedNetwork
from .task import Dataset


def export_npz(net: PlantedNetwork, data: Dataset, path: str | Path) -> Path:
    """Write w0..wL ([out, in] float32), b0..bL, ticket_w*/ticket_b* (bool), the data splits,
    output_scale (c per output: ticket output = c * target) and meta (a JSON string), which also holds
    the planted ticket's own test metric as a reference (ticket_test_metric names it, ticket_test_value)."""
    arrays: dict[str, np.ndarray] = {}
    for l in range(net.depth):
        arrays[f"w{l}"] = net.weights[l].detach().cpu().numpy().astype(np.float32)
        arrays[f"b{l}"] = net.biases[l].detach().cpu().numpy().astype(np.float32)
        arrays[f"ticket_w{l}"] = net.ticket_weights[l].cpu().numpy().astype(bool)
        arrays[f"ticket_b{l}"] = net.ticket_biases[l].cpu().numpy().astype(bool)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        arrays[name] = getattr(data, name).cpu().numpy()
    arrays["output_scale"] = net.output_scale.cpu().numpy().astype(np.float64)
    meta = {**ticket_test_metric(net, data), "task": net.task, "depth": net.depth, "sizes": net.sizes,
            "widths": net.widths, "seed": net.seed,
            "ticket_size": net.ticket_size, "ticket_density": net.ticket_density,
            "depth_counts": "weight layers (nn.Linear modules)", "plantbench": __version__,
            **{k: net.meta[k] for k in ("task_from_file", "task_source_sha256") if k in net.meta}}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    atomic_savez(path, arrays)
    return Path(path)


def ticket_test_metric(net: PlantedNetwork, data: Dataset) -> dict:
    """The planted ticket alone on the test split: host weights and biases (as exported, float32)
    times the ticket masks, in float64, outputs divided by output_scale; the accuracy of their argmax
    for class labels, else the mean squared error. Any reader can recompute it from the .npz."""
    h = data.x_test.detach().cpu().double()
    for l in range(net.depth):
        w = (net.weights[l].detach().cpu() * net.ticket_weights[l].cpu()).double()
        b = (net.biases[l].detach().cpu() * net.ticket_biases[l].cpu()).double()
        h = h @ w.T + b
        h = torch.relu(h) if l < net.depth - 1 else h
    out, y = h / net.output_scale.cpu().double(), data.y_test.cpu()
    if y.dtype.is_floating_point:
        return {"ticket_test_metric": "mse", "ticket_test_value": float(mse(out, y.reshape(out.shape)))}
    return {"ticket_test_metric": "accuracy", "ticket_test_value": float(accuracy(out, y))}
