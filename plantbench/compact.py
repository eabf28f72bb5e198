"""Judging masked networks at the cost of their live neurons: compaction of stacked networks.

A sparse mask often leaves hidden neurons that cannot matter. The judge trains and evaluates
such a network on its live neurons alone: each hidden layer is cut down to the neurons that
can change an output, gathered in their original order and padded with inert neurons to a
width that depends on the network alone (so the shapes a network is computed in never depend
on its batch mates). Networks of equal padded widths are stacked and trained in lockstep, exactly as the
dense path stacks whole hosts.

Why dropping a neuron is exact, for the evaluation and for the training of the rest
(h_l = relu(W_l h_{l-1} + b_l) for hidden layers, the last layer linear; pruned entries of W
and b are zero at the start and never updated, see train.train_stacked):

1. No kept path to an output ("dead downstream"). By induction from the last hidden layer,
   such a neuron's outgoing kept weights all lead to neurons of the same kind, and its
   outgoing pruned weights are exactly zero, so it adds nothing to any output. In training,
   the error signal it receives is a sum of products of exact zeros (pruned weights) and of
   the zero signals of such neurons, so it is zero: the gradients of its incoming weights,
   its bias and its outgoing kept weights are all zero at every step, and Adam or SGD with a
   zero gradient from the first step leave a parameter exactly where it is (the first and
   second moments stay zero, so the step is 0 / (0 + eps)). Nothing it owns ever changes
   and nothing it feeds can reach an output.
2. Identically zero ("zero upstream"): its bias is pruned and every kept incoming weight
   comes from a neuron of the same kind (in the first hidden layer: it has no kept incoming
   weight). Its pre-activation is then exactly 0 for every input at every step, its output
   relu(0) = 0, and the ReLU's derivative at 0 is taken as 0, so it passes no gradient back
   and its outgoing weights get gradient (signal x 0) = 0. It is inert forever.

Not dropped: a neuron without a kept path from the input whose bias is kept (or that is fed
by such neurons). It outputs a constant, relu(b + ...), that can be non-zero and that training
changes through its bias whenever it feeds an output; it is as live as any other neuron.
Inputs and outputs are never dropped. (Where training diverges to inf or NaN, 0 x NaN makes
the dense path's dead neurons NaN too; such a run's scores are not finite either way.)

The padding neurons are inert in the sense of (2): every weight and bias of theirs is pruned.
The compact network therefore computes the dense network's outputs with fewer zero terms in
each sum: equal up to float rounding, and trained in the same lockstep with the same batch
orders, so its trained scores match the dense path's within float tolerance.
"""

from __future__ import annotations

import torch

#: A network is compacted when its padded width is at most this fraction of the host's width:
#: the matrix products then shrink at least fourfold, which outweighs the gather and the extra
#: lockstep loop of a second batch (docs/performance.md, "How cost grows").
COMPACT_FRACTION = 0.5
#: The smallest padded width; padded widths are 8, 12, 16, 24, 32, 48, ... (at most 1.5x the
#: live width), so that networks of similar sizes share a stacked batch.
MIN_WIDTH = 8


def live_neurons(wmasks: list[torch.Tensor], bmasks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per hidden layer, bool [K, width]: the neurons that are neither dead downstream nor
    identically zero (see the module's docstring). wmasks [K, out, in], bmasks [K, out]."""
    K = wmasks[0].shape[0]
    down = [torch.ones(K, wmasks[-1].shape[1], dtype=torch.bool, device=wmasks[0].device)]
    for m in reversed(wmasks[1:]):
        down.insert(0, (down[0].float().unsqueeze(1) @ m.float()).squeeze(1) > 0)
    up = torch.ones(K, wmasks[0].shape[2], dtype=torch.bool, device=wmasks[0].device)  # not identically zero
    live = []
    for l, m in enumerate(wmasks[:-1]):
        fed = (m.float() @ up.float().unsqueeze(-1)).squeeze(-1) > 0
        up = fed | bmasks[l].bool()
        live.append(up & down[l])
    return live


def padded_width(n: int) -> int:
    """The smallest of 8, 12, 16, 24, 32, 48, ... that holds n neurons."""
    p = MIN_WIDTH
    while True:
        if n <= p:
            return p
        if n <= p * 3 // 2:
            return p * 3 // 2
        p *= 2


def plan(live: list[torch.Tensor], widths: list[int], n: int) -> list[tuple[int | None, list[int]]]:
    """Batches of the n networks: (padded width, indices) for compacted ones, (None, indices)
    for the ones judged dense. A network's choice and width depend on its own mask only."""
    if not live:  # no hidden layer: nothing to drop
        return [(None, list(range(n)))]
    counts = torch.stack([m.sum(1) for m in live], 1).amax(1).tolist()  # [K] widest live layer
    batches: dict[int | None, list[int]] = {}
    for k, n in enumerate(counts):
        p = padded_width(int(n))
        key = p if p <= COMPACT_FRACTION * max(widths) else None
        batches.setdefault(key, []).append(k)
    return sorted(batches.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))


def compact_layers(weights, biases, wmasks, bmasks, live_of: list[torch.Tensor], width: int):
    """One network cut down to its live neurons, padded to `width` per hidden layer (at most
    the layer's own width): (weights, biases, weight masks, bias masks), per layer.

    weights [out, in], biases [out], masks bool of the same shapes; live_of per hidden layer
    bool [size]. Padding neurons copy neuron 0's parameters with every mask entry False.
    """
    device = weights[0].device
    keep = [torch.arange(weights[0].shape[1], device=device)]
    valid = [torch.ones(weights[0].shape[1], dtype=torch.bool, device=device)]
    for l, alive in enumerate(live_of):
        idx = alive.nonzero().squeeze(1)
        size = min(width, weights[l].shape[0])
        pad = size - idx.numel()
        keep.append(torch.cat([idx, idx.new_zeros(pad)]))
        valid.append(torch.arange(size, device=device) < idx.numel())
    n_out = weights[-1].shape[0]
    keep.append(torch.arange(n_out, device=device))
    valid.append(torch.ones(n_out, dtype=torch.bool, device=device))
    W, B, M, MB = [], [], [], []
    for l in range(len(weights)):
        rows, cols = keep[l + 1], keep[l]
        ok = valid[l + 1][:, None] & valid[l][None, :]
        W.append(weights[l][rows][:, cols])
        B.append(biases[l][rows])
        M.append(wmasks[l][rows][:, cols] & ok)
        MB.append(bmasks[l][rows] & valid[l + 1])
    return W, B, M, MB
