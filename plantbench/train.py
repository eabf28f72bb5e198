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

    The forward and backward passes are written out by hand (batched matrix products, no
    autograd) and one fused Adam updates the stacked tensors. Pruned entries start at zero and
    their gradients are masked, so Adam never moves them: the same as masking every forward
    pass, at a fraction of the cost.

    Args:
        weights, biases: per layer [K, out, in] and [K, out]; not modified.
        wmasks, bmasks: per layer masks of the same shapes (bool or float 0/1).
        x: [K, N, in] training inputs per network; y: [K, N] labels or [K, N, d] values.
        generators: one CPU generator per network for its batch order.
        epochs: defaults to protocol.epochs.
    """
    epochs = protocol.epochs if epochs is None else epochs
    K, N = x.shape[0], x.shape[1]
    wm = [m.to(w.dtype) for m, w in zip(wmasks, weights)]
    bm = [m.to(b.dtype) for m, b in zip(bmasks, biases)]
    params = [w.detach() * m for w, m in zip(weights, wm)] + [b.detach() * m for b, m in zip(biases, bm)]
    masks = [None if bool(m.all()) else m for m in wm + bm]  # an all-kept mask needs no multiply
    if epochs <= 0 or N == 0:
        return params[:len(weights)], params[len(weights):]
    adam = _adam(params, protocol)
    rows = torch.arange(K, device=x.device)[:, None]
    B = protocol.batch_size
    with torch.no_grad():
        for _ in range(epochs):
            order = torch.stack([torch.randperm(N, generator=g) for g in generators]).to(x.device)
            for start in range(0, N, B):
                idx = order[:, start:start + B]
                grads = _gradients(params, x[rows, idx], y[rows, idx], kind)
                for q, g, m in zip(params, grads, masks):
                    q.grad = g if m is None else g.mul_(m)
                adam.step()
    params = [q.detach().requires_grad_(False) for q in params]
    L = len(weights)
    return params[:L], params[L:]


def _gradients(params: list[torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, kind: str) -> list[torch.Tensor]:
    """Gradients of sum_k mean-loss_k for a ReLU MLP; params = weights then biases, stacked over K."""
    L = len(params) // 2
    ws, bs = params[:L], params[L:]
    acts = [xb]
    h = xb
    for l in range(L):
        h = torch.baddbmm(bs[l].unsqueeze(1), h, ws[l].transpose(1, 2))
        if l < L - 1:
            h = h.clamp_min_(0)
            acts.append(h)
    n = xb.shape[1]
    if kind == "classification":
        delta = torch.softmax(h, -1)
        delta.scatter_add_(-1, yb.unsqueeze(-1), torch.full_like(delta[..., :1], -1.0))
        delta.div_(n)
    else:
        delta = (h - yb).mul_(2.0 / (n * h.shape[-1]))
    gw, gb = [None] * L, [None] * L
    for l in range(L - 1, -1, -1):
        gw[l] = delta.transpose(1, 2) @ acts[l]
        gb[l] = delta.sum(1)
        if l:  # through the ReLU: zero where the activation was clamped
            delta = torch.ops.aten.threshold_backward(delta @ ws[l], acts[l], 0)
    return gw + gb


def _adam(params: list[torch.Tensor], protocol: Protocol) -> torch.optim.Adam:
    """One Adam over the stacked tensors. Adam is elementwise, so this is K independent Adams;
    the fused kernel (one pass per tensor) where torch has it for the device, else foreach."""
    for q in params:
        q.requires_grad_(True)
    kwargs = dict(lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, foreach=True, **kwargs)
