"""The training protocol and one lean training loop for K stacked networks of one architecture.

Every run trains with its own seeded batch order; the K runs advance in lockstep through
batched matrix products, and Adam's elementwise update makes one optimiser over the stacked
tensors exactly K independent optimisers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch.nn import functional as F

from .network import stacked_forward


@dataclass(frozen=True)
class Protocol:
    """How masked networks are trained: Adam, lr 1e-3, batch 32, 10 epochs (Plant 'n' Seek)."""

    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def to_dict(self) -> dict:
        return {"optimizer": "adam", **asdict(self)}


def task_loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-network mean loss for outputs [..., n, d]: cross-entropy or MSE. Returns shape [...]."""
    if kind == "classification":
        return F.cross_entropy(out.transpose(-1, -2), y, reduction="none").mean(-1) if out.dim() == 3 \
            else F.cross_entropy(out, y)
    return (out - y).pow(2).mean(dim=(-2, -1))


def train_stacked(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                  wmasks: Sequence[torch.Tensor], bmasks: Sequence[torch.Tensor],
                  x: torch.Tensor, y: torch.Tensor, kind: str, protocol: Protocol,
                  generators: Sequence[torch.Generator], epochs: int | None = None) -> tuple[list, list]:
    """Train K masked networks in lockstep and return their trained weights and biases.

    Args:
        weights, biases: per layer [K, out, in] and [K, out]; not modified.
        wmasks, bmasks: per layer masks of the same shapes (bool or float).
        x: [K, N, in] training inputs per network; y: [K, N] labels or [K, N, d] values.
        generators: one CPU generator per network for its batch order.
        epochs: defaults to protocol.epochs.
    """
    epochs = protocol.epochs if epochs is None else epochs
    K, N = x.shape[0], x.shape[1]
    ws = [w.detach().clone().requires_grad_(True) for w in weights]
    bs = [b.detach().clone().requires_grad_(True) for b in biases]
    wm = [m.to(w.dtype) for m, w in zip(wmasks, ws)]
    bm = [m.to(b.dtype) for m, b in zip(bmasks, bs)]
    if epochs <= 0 or N == 0:
        return [w.detach() for w in ws], [b.detach() for b in bs]
    opt = torch.optim.Adam(ws + bs, lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
    rows = torch.arange(K, device=x.device)[:, None]
    B = protocol.batch_size
    for _ in range(epochs):
        order = torch.stack([torch.randperm(N, generator=g) for g in generators]).to(x.device)
        for start in range(0, N, B):
            idx = order[:, start:start + B]
            xb, yb = x[rows, idx], y[rows, idx]
            out = stacked_forward(xb, [w * m for w, m in zip(ws, wm)], [b * m for b, m in zip(bs, bm)])
            loss = task_loss(kind, out, yb).sum()
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
    return [w.detach() for w in ws], [b.detach() for b in bs]
