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
    autograd). All parameters live in one flat buffer and all gradients in another; Adam runs
    on the kept entries only, gathered from the gradient buffer and written back into the
    parameters after each step. Pruned entries start at zero and are never touched: the same as
    masking every forward pass, without any elementwise work on them.

    Args:
        weights, biases: per layer [K, out, in] and [K, out]; not modified.
        wmasks, bmasks: per layer masks of the same shapes (bool or float 0/1).
        x: [K, N, in] training inputs per network; y: [K, N] labels or [K, N, d] values.
        generators: one CPU generator per network for its batch order.
        epochs: defaults to protocol.epochs.
    Returns:
        Per layer weights [K, out, in] and biases [K, out], pruned entries zero.
    """
    epochs = protocol.epochs if epochs is None else epochs
    K, N, L = x.shape[0], x.shape[1], len(weights)
    tensors = [*weights, *biases]
    shapes = [t.shape for t in tensors]
    keep = torch.cat([(m != 0).reshape(-1) for m in [*wmasks, *bmasks]])
    flat = torch.cat([t.detach().reshape(-1) for t in tensors]).mul_(keep)  # pruned entries start at zero
    params = _views(flat, shapes)
    if epochs <= 0 or N == 0:
        return params[:L], params[L:]
    kept = keep.nonzero().squeeze(1)
    grad = torch.empty_like(flat)
    grads = _views(grad, shapes)
    compact = flat.index_select(0, kept)
    adam = _adam(compact, protocol)
    rows = torch.arange(K, device=x.device)[:, None]
    B = protocol.batch_size
    with torch.no_grad():
        for _ in range(epochs):
            order = torch.stack([torch.randperm(N, generator=g) for g in generators]).to(x.device)
            xe, ye = x[rows, order], y[rows, order]  # each run's epoch in its own order, gathered once
            for start in range(0, N, B):
                _gradients(params, xe[:, start:start + B], ye[:, start:start + B], kind, out=grads)
                compact.grad = grad.index_select(0, kept)
                adam.step()
                flat.index_copy_(0, kept, compact.detach())
    return params[:L], params[L:]


def _views(flat: torch.Tensor, shapes) -> list[torch.Tensor]:
    return [v.view(s) for v, s in zip(flat.split([s.numel() for s in shapes]), shapes)]


def _gradients(params: list[torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, kind: str,
               out: list[torch.Tensor]) -> None:
    """Gradients of sum_k mean-loss_k for a ReLU MLP, written into `out`; params and out are
    weights then biases, stacked over K."""
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
    for l in range(L - 1, -1, -1):
        torch.bmm(delta.transpose(1, 2), acts[l], out=out[l])
        torch.sum(delta, 1, out=out[L + l])
        if l:  # through the ReLU: zero where the activation was clamped
            delta = torch.ops.aten.threshold_backward(delta @ ws[l], acts[l], 0)


def _adam(param: torch.Tensor, protocol: Protocol) -> torch.optim.Adam:
    """One Adam over the kept entries of every stacked network. Adam is elementwise, so this is
    K independent optimisers; the fused kernel (one pass) where torch has it for the device."""
    param.requires_grad_(True)
    kwargs = dict(lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
    try:
        return torch.optim.Adam([param], fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam([param], foreach=True, **kwargs)
