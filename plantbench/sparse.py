"""Sparse products for very sparse layers of wide hosts: the judge's cost follows the kept weights.

A dense batched product pays for every entry of a layer, kept or pruned. At width 1,000 and
density 0.01 a layer keeps 10,000 of its million weights, and torch's CSR product of such a
layer with a batch of 32 is about 100 times faster than the dense one on the CPU. This module
trains and evaluates K stacked networks with such layers as sparse matrices:

* The K networks' kept entries of one layer form one block-diagonal CSR matrix
  [K * out, K * in]; activations are stored feature-major, [K, features, samples], so that a
  layer's forward product is one `torch.sparse.mm` for all K networks.
* Backward: the input gradient is one CSR product with the transposed structure (the same
  values, permuted), and the weight gradient is sampled at the kept entries alone
  (`torch.sparse.sampled_addmm`), so no dense gradient of a sparse layer is ever formed.
* Layers the rule leaves dense take batched products in the same layout, biases are dense.
  The optimiser (train._optimizer) steps on the kept entries only, as in train.train_stacked,
  with the same batch orders, loss and output gradient (train._output_delta), so a network
  trains as on the dense path up to float rounding.

The rule (`layouts`) is per network and layer, from the layer's shape and the network's own
kept count, so a network's computation never depends on its batch mates. It was measured on
the CPU (docs/performance.md, "How cost grows with the host"); devices without a measured rule
keep every layer dense.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from .train import Protocol, _optimizer, _output_delta, fitted_class_scales

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")  # it is what we use

_VECTOR = 64  # the optimiser's buffer is padded to a multiple of this: every entry takes its vector code
#: Samples per evaluation chunk. The CSR product streams a network's input rows once per kept
#: entry; they stay in cache only for a few dozen samples (at width 1,000, one thread: about
#: 1.6 us per sample at 64 samples, 7.5 us at 256 and more, 23 us at 9,000).
_EVAL_SAMPLES = 64


@dataclass(frozen=True)
class Rule:
    """When a layer takes sparse products: for some (min_entries, max_density) tier, the layer
    has at least min_entries entries (out x in), of which the network keeps at most max_density.
    Larger layers pay for a sparse product's fixed costs at higher densities."""

    tiers: tuple[tuple[int, float], ...]

    def sparse(self, out: int, inp: int, kept: int) -> bool:
        return any(out * inp >= n and kept <= d * out * inp for n, d in self.tiers)


#: Measured rules by device type (docs/experiments/sparse_rule.py, docs/performance.md): on one
#: CPU thread, a training step with sparse products was 2.4 to 2.7 times faster for 300 x 300
#: layers at density 0.01 and not reliably faster at 0.05; 1.7 to 10 times faster from 500 x 500
#: up at 0.05 and below, between 0.9 and 3 times at 0.1, and no faster at 0.2. A width-100 host's largest layer has 10,000 entries, 6.5 times fewer than the
#: smallest tier: every suite at width 100 or less (paper, quick, depth2, depth9, noise) is
#: judged dense, bit for bit as before (tests/test_sparse.py).
RULES: dict[str, Rule] = {"cpu": Rule(tiers=((65_536, 0.02), (250_000, 0.05)))}


def layouts(masks: list[torch.Tensor], device: torch.device) -> list[tuple[bool, ...]]:
    """Per network, per layer: True where the layer takes sparse products. masks bool [K, out, in]."""
    rule = RULES.get(torch.device(device).type)
    if rule is None:
        return [(False,) * len(masks)] * masks[0].shape[0]
    kept = torch.stack([torch.count_nonzero(m.flatten(1), dim=1) for m in masks], 1).tolist()  # [K, L]
    return [tuple(rule.sparse(m.shape[1], m.shape[2], c) for m, c in zip(masks, row)) for row in kept]


def split(masks: list[torch.Tensor], device) -> list[tuple[tuple[bool, ...], list[int]]]:
    """The networks grouped by layout: (layout, positions), all-dense first."""
    groups: dict[tuple[bool, ...], list[int]] = {}
    for k, layout in enumerate(layouts(masks, device)):
        groups.setdefault(layout, []).append(k)
    return sorted(groups.items(), key=lambda kv: (any(kv[0]), kv[0]))


class _Pattern:
    """The kept entries of one layer of K networks as a block-diagonal CSR structure and its
    transpose; `values` order is row-major per network (the order of mask.nonzero())."""

    def __init__(self, mask: torch.Tensor):
        K, out, inp = self.dense_shape = mask.shape
        self.shape = (K * out, K * inp)
        k, i, j = mask.nonzero(as_tuple=True)
        self.where = (k, i, j)
        rows, cols = k * out + i, k * inp + j
        # 32-bit indices where they fit: the CPU kernels take them as they are (64-bit ones are
        # converted on every call).
        index = torch.int32 if max(*self.shape, rows.numel()) < 2 ** 31 else torch.int64
        self.crow = _crow(rows, K * out).to(index)
        self.col = cols.to(index)
        self.perm = torch.argsort(cols * (K * out) + rows)  # the transpose's row-major order
        self.tcrow = _crow(cols, K * inp).to(index)
        self.tcol = rows[self.perm].to(index)
        self.nnz = rows.numel()

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(self.crow, self.col, values, self.shape, check_invariants=False)

    def transposed(self, values: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(self.tcrow, self.tcol, values[self.perm], self.shape[::-1],
                                       check_invariants=False)


def _crow(rows: torch.Tensor, n: int) -> torch.Tensor:
    crow = torch.zeros(n + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.bincount(rows, minlength=n).cumsum(0)
    return crow


class SparseStack:
    """K masked networks of one architecture, sparse layers as CSR values, the rest dense.

    weights, biases: per layer [K, out, in] and [K, out]; masks of the same shapes; layout:
    per layer, True for sparse products. Parameters live in `flat` (dense layers and biases,
    pruned entries zero) and in `values` (the kept entries of the sparse layers).
    """

    def __init__(self, weights, biases, wmasks, bmasks, layout: tuple[bool, ...]):
        self.layout, self.L = layout, len(weights)
        self.patterns = [_Pattern(m.bool()) if s else None for m, s in zip(wmasks, layout)]
        dense = [w for w, s in zip(weights, layout) if not s]
        dense_masks = [m for m, s in zip(wmasks, layout) if not s]
        self.shapes = [t.shape for t in [*dense, *biases]]
        self.keep = torch.cat([(m != 0).reshape(-1) for m in [*dense_masks, *bmasks]])
        self.flat = torch.cat([t.detach().reshape(-1) for t in [*dense, *biases]]).mul_(self.keep)
        self.values = [w.detach()[p.where] if p is not None else None for w, p in zip(weights, self.patterns)]
        self._bind()

    def _bind(self):
        views = [v.view(s) for v, s in zip(self.flat.split([s.numel() for s in self.shapes]), self.shapes)]
        n_dense = sum(1 for s in self.layout if not s)
        it = iter(views[:n_dense])
        self.weights = [None if s else next(it) for s in self.layout]
        self.biases = views[n_dense:]

    def parameters(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Dense copies: per layer weights [K, out, in] and biases [K, out], pruned entries zero."""
        weights = []
        for w, p, v in zip(self.weights, self.patterns, self.values):
            if p is None:
                weights.append(w.clone())
            else:
                weights.append(torch.zeros(p.dense_shape, dtype=v.dtype, device=v.device).index_put_(p.where, v))
        return weights, [b.clone() for b in self.biases]

    def forward(self, x: torch.Tensor, keep_acts: bool = False):
        """x [K, in, n] (feature-major) -> outputs [K, out, n], and the hidden activations."""
        acts, h = [x], x
        for l in range(self.L):
            h = self._product(l, h).add_(self.biases[l].unsqueeze(2))
            if l < self.L - 1:
                h = h.clamp_min_(0)
                if keep_acts:
                    acts.append(h)
        return h, acts

    def _product(self, l: int, h: torch.Tensor) -> torch.Tensor:
        p = self.patterns[l]
        if p is None:
            return torch.bmm(self.weights[l], h)
        K, inp, n = h.shape
        out = torch.sparse.mm(p.matrix(self.values[l]), h.reshape(K * inp, n))
        return out.view(K, -1, n)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs [K, N, out] for inputs x [K, N, in], in chunks of samples."""
        xt = x.transpose(1, 2)
        with torch.no_grad():
            return torch.cat([self.forward(xt[:, :, s:s + _EVAL_SAMPLES].contiguous())[0]
                              for s in range(0, x.shape[1], _EVAL_SAMPLES)], 2).transpose(1, 2)

def train_sparse(stack: SparseStack, x: torch.Tensor, y: torch.Tensor, kind: str, protocol: Protocol,
                 generators, epochs: int | None = None) -> None:
    """Train the stack in place, as train.train_stacked trains the same networks densely.

    The same batch orders (one randperm per network and epoch from its generator), loss and
    optimiser; the optimiser's buffer holds the dense layers' and biases' kept entries, then
    the sparse layers' values, padded to a multiple of _VECTOR with idle entries.
    x: [K, N, in]; y: [K, N] labels or [K, N, d] values or class probabilities.
    """
    from .errors import UsageError

    epochs = protocol.epochs if epochs is None else epochs
    K, N = x.shape[0], x.shape[1]
    if epochs <= 0 or N == 0:
        return
    refit = kind == "classification" and protocol.loss_scale == "fitted"
    if refit and y.is_floating_point():
        raise UsageError("soft class targets need loss_scale 'raw' (the fitted class scales are fitted to labels)")
    kept = stack.keep.nonzero().squeeze(1)
    sparse_values = [v for v in stack.values if v is not None]
    sizes = [kept.numel(), *(v.numel() for v in sparse_values)]
    pad = -sum(sizes) % _VECTOR
    compact = torch.cat([stack.flat.index_select(0, kept), *sparse_values, stack.flat.new_zeros(pad)])
    optimizer = _optimizer(compact, protocol)
    parts = compact.detach().split([*sizes, pad])
    grad = torch.zeros_like(compact)
    gparts = grad.split([*sizes, pad])
    compact.grad = grad
    it, git = iter(parts[1:]), iter(gparts[1:])
    stack.values = [None if v is None else next(it) for v in stack.values]  # views of the optimiser's buffer
    gvalues = [None if v is None else next(git) for v in stack.values]
    gflat = torch.zeros_like(stack.flat)
    gviews = [v.view(s) for v, s in zip(gflat.split([s.numel() for s in stack.shapes]), stack.shapes)]
    n_dense = sum(1 for s in stack.layout if not s)
    it = iter(gviews[:n_dense])
    gweights = [None if s else next(it) for s in stack.layout]
    zeros = [None if p is None else p.matrix(torch.zeros_like(v)) for p, v in zip(stack.patterns, stack.values)]
    rows, B = torch.arange(K, device=x.device)[:, None], protocol.batch_size
    with torch.no_grad():
        for _ in range(epochs):
            scale = fitted_class_scales(stack.outputs(x), y) if refit else None
            order = torch.stack([torch.randperm(N, generator=g) for g in generators]).to(x.device)
            xe, ye = x[rows, order].transpose(1, 2), y[rows, order]
            for start in range(0, N, B):
                _gradients(stack, xe[:, :, start:start + B].contiguous(), ye[:, start:start + B], kind,
                           protocol.loss_scale, scale, zeros, (gweights, gviews[n_dense:], gvalues))
                torch.index_select(gflat, 0, kept, out=gparts[0])
                optimizer.step()
                stack.flat.index_copy_(0, kept, parts[0])


def _gradients(stack: SparseStack, xb, yb, kind, loss_scale, scale, zeros, out) -> None:
    """Gradients of sum_k mean-loss_k, feature-major; out: (dense weight grads, bias grads,
    sparse value grads), per layer (None where the layer has the other kind)."""
    gweights, gbiases, gvalues = out
    h, acts = stack.forward(xb, keep_acts=True)
    delta = _output_delta(h.transpose(1, 2), yb, kind, loss_scale, scale).transpose(1, 2).contiguous()
    for l in range(stack.L - 1, -1, -1):
        a, p = acts[l], stack.patterns[l]
        K, n = a.shape[0], a.shape[2]
        torch.sum(delta, 2, out=gbiases[l])
        if p is None:
            torch.bmm(delta, a.transpose(1, 2), out=gweights[l])
        else:
            d2, a2 = delta.view(-1, n), a.reshape(-1, n)
            gvalues[l].copy_(torch.sparse.sampled_addmm(zeros[l], d2, a2.t(), beta=0.0).values())
        if l:  # through the ReLU: zero where the activation was clamped
            if p is None:
                back = torch.bmm(stack.weights[l].transpose(1, 2), delta)
            else:
                back = torch.sparse.mm(p.transposed(stack.values[l]), d2).view(K, -1, n)
            delta = torch.ops.aten.threshold_backward(back, a, 0)


def judge_batch(task, weights, biases, wmasks, bmasks, layout, x_tr, y_tr, x_te, y_te, protocol: Protocol,
                generators, train: bool) -> tuple[torch.Tensor, list | None]:
    """Strong and (with train) weak scores of K networks judged with sparse layers: the judge's
    readout on the outputs before and after training."""
    from .judge import score_outputs  # the judge imports this module

    stack = SparseStack(weights, biases, wmasks, bmasks, layout)
    strong = score_outputs(task, stack.outputs(x_tr), y_tr, stack.outputs(x_te), y_te)
    if not train:
        return strong, None
    train_sparse(stack, x_tr, y_tr, task.kind, protocol, generators)
    return strong, score_outputs(task, stack.outputs(x_tr), y_tr, stack.outputs(x_te), y_te).tolist()
