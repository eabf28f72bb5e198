"""IMP as Frankle and Carbin ran it on fully connected networks: layer-wise rates, output at half.

Frankle and Carbin, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks",
ICLR 2019. Each round trains the masked network for `epochs` epochs with the standard protocol
(`problem.train`, fresh optimiser), removes in every hidden layer the fraction `rate` of its
surviving weights of smallest trained |w|, in the output layer half that fraction, and resets
the weights to the rewinding point. Pruned weights never come back. `imp` (global ranking,
Plant 'n' Seek's schedule) is the other variant; this is the paper's own procedure.

Per-layer targets. After t rounds a layer of n weights pruned at rate p keeps n (1 - p)^t. The
rounds go on while the total kept is above the budget; the last round, round T, prunes to the
real t* in (T - 1, T] at which the layers' n (1 - p)^t* add up to exactly problem.budget (found
by bisection). So every layer has gone through the same t* rounds, and the output layer's kept
fraction (1 - p/2)^t* is still that of half the rate. Each round's real targets are rounded to
integers by largest remainder to their rounded total (the budget in the last round), never
above what the layer kept in the round before; within a layer the ranking is by |w| with ties
to the lower index. Fixed per-layer rates do not look at layer sizes: at very low densities a
small layer can reach zero weights (the 32 input weights of a one-input task at width 32 do so
after 20 rounds), which disconnects the network, as the procedure dictates.

`imp-fc-rewind` is late rewinding (Frankle, Dziugaite, Roy and Carbin, "Stabilizing the Lottery
Ticket Hypothesis", arXiv 1903.01611, 2019): before the first round the dense network trains
for `rewind_steps` steps (k) with the protocol's optimiser, learning rate and batch size on
batches from `problem.batches` (fresh optimiser, the task loss), and every round starts from
those step-k weights W_k instead of the initialisation. Only the mask leaves the pruner: the
judge always trains it from the planted initialisation, like every other mask, so W_k shapes
which weights are kept, not where the judged training starts.

Defaults: `rate=0.2`, the paper's rate for its fully connected networks (LeNet-300-100 on MNIST,
Sec. 2 and Fig. 2), the output layer at 0.1; `epochs=5` per round, the training per round of
the suite's `imp` (Plant 'n' Seek's multi-shot protocol), so the two differ only in how they
prune; `rewind_steps=100`, about 7% of one round (1,410 steps of batch 32 on 9,000 training
points), the end of the 0.1%-7% range of rewinding points at which Frankle et al. found
stable tickets.
"""

import copy
import math

import torch

from plantbench import Mask, Pruner, train_many


class IMPFC(Pruner):
    name = "imp-fc"

    def __init__(self, rate: float = 0.2, epochs: int = 5):
        if not 0.0 < float(rate) < 1.0 or int(epochs) < 0:
            raise ValueError(f"need 0 < rate < 1 and epochs >= 0, got rate={rate}, epochs={epochs}")
        self.rate = float(rate)
        self.epochs = int(epochs)
        self.history = []  # per round: the per-layer kept counts

    def rewind_point(self, problem):
        """The weights every round starts from: the planted initialisation."""
        return copy.deepcopy(problem.model.state_dict())

    def prune(self, problem):
        start = self.rewind_point(problem)
        params = list(problem.model.prunable())
        sizes = [p.numel() for _, p in params]
        rates = [self.rate] * (len(sizes) - 1) + [self.rate / 2]
        mask = Mask.ones(problem.model)
        self.history = []
        for counts in round_counts(sizes, rates, problem.budget):
            problem.model.load_state_dict(start)
            problem.train(mask, self.epochs)
            mask = Mask({n: keep_largest(p.detach(), mask[n], c) for (n, p), c in zip(params, counts)})
            self.history.append(counts)
        problem.model.load_state_dict(start)
        return mask

    def prune_group(self, problems):
        """`prune` for every problem, each round's training of the problems still pruning in
        lockstep (a problem with a larger budget needs fewer rounds). `history` ends as the last
        problem's."""
        starts = [self.rewind_point(p) for p in problems]
        params = [list(p.model.prunable()) for p in problems]
        sizes = [q.numel() for _, q in params[0]] if problems else []
        rates = [self.rate] * (len(sizes) - 1) + [self.rate / 2]
        plans = [round_counts(sizes, rates, p.budget) for p in problems]
        masks = [Mask.ones(p.model) for p in problems]
        for r in range(max(map(len, plans), default=0)):
            active = [i for i, plan in enumerate(plans) if r < len(plan)]
            for i in active:
                problems[i].model.load_state_dict(starts[i])
            train_many([problems[i] for i in active], [masks[i] for i in active], self.epochs)
            for i in active:
                masks[i] = Mask({n: keep_largest(q.detach(), masks[i][n], c) for (n, q), c in zip(params[i], plans[i][r])})
        for p, start in zip(problems, starts):
            p.model.load_state_dict(start)
        self.history = plans[-1] if plans else []
        return masks


class IMPFCRewind(IMPFC):
    name = "imp-fc-rewind"

    def __init__(self, rate: float = 0.2, epochs: int = 5, rewind_steps: int = 100):
        super().__init__(rate=rate, epochs=epochs)
        if int(rewind_steps) < 0:
            raise ValueError(f"rewind_steps must be >= 0, got {rewind_steps}")
        self.rewind_steps = int(rewind_steps)

    def rewind_point(self, problem):
        """W_k: the dense network after `rewind_steps` steps of the protocol's optimiser."""
        model, protocol = problem.model, problem.protocol
        params = list(model.parameters())
        if protocol.optimizer == "sgd":
            optimizer = torch.optim.SGD(params, lr=protocol.lr, momentum=protocol.momentum)
        else:
            optimizer = torch.optim.Adam(params, lr=protocol.lr, betas=protocol.betas, eps=protocol.eps)
        step = 0
        while step < self.rewind_steps:
            for x, y in problem.batches(protocol.batch_size):
                if step == self.rewind_steps:
                    break
                optimizer.zero_grad()
                problem.loss(model(x), y).backward()
                optimizer.step()
                step += 1
        return copy.deepcopy(model.state_dict())


def kept_at(sizes, rates, t):
    """The real-valued weights each layer keeps after t rounds: n (1 - p)^t."""
    return [n * (1.0 - p) ** t for n, p in zip(sizes, rates)]


def round_counts(sizes, rates, budget):
    """Per round, the integer count each layer keeps; the last round's add up to `budget`."""
    if budget >= sum(sizes):
        return []
    if budget <= 0:
        return [[0] * len(sizes)]
    rounds = 1
    while sum(kept_at(sizes, rates, rounds)) > budget:
        rounds += 1
    lo, hi = rounds - 1.0, float(rounds)  # sum kept_at(lo) > budget >= sum kept_at(hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if sum(kept_at(sizes, rates, mid)) > budget else (lo, mid)
    counts, caps = [], sizes
    for r in range(1, rounds + 1):
        real = kept_at(sizes, rates, r if r < rounds else hi)
        total = budget if r == rounds else min(round(sum(real)), sum(caps))
        caps = share(real, total, caps)
        counts.append(caps)
    return counts


def share(real, total, caps):
    """Round `real` to integers adding up to `total`: floors, then +1 by largest remainder,
    never above `caps` (the counts of the round before)."""
    counts = [min(math.floor(x), c) for x, c in zip(real, caps)]
    order = sorted(range(len(real)), key=lambda i: (counts[i] - real[i], i))
    while sum(counts) < total:
        for i in order:
            if sum(counts) < total and counts[i] < caps[i]:
                counts[i] += 1
    return counts


def keep_largest(w, eligible, k):
    """The k eligible weights of largest |w| (ties to the lower index) as a bool mask."""
    flat = torch.where(eligible.reshape(-1), w.reshape(-1).abs().double(),
                       torch.tensor(float("-inf"), dtype=torch.float64, device=w.device))
    keep = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
    keep[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
    return keep.reshape(w.shape) & eligible.to(w.device)
