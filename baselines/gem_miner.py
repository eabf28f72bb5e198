"""GEM-Miner: relaxed scores in [0, 1], rounded in the forward pass, pruned periodically.

Paper: K. Sreenivasan, J. Sohn, L. Yang, M. Grinde, A. Nagle, H. Wang, E. Xing, K. Lee and
D. Papailiopoulos, "Rare Gems: Finding Lottery Tickets at Initialization", NeurIPS 2022
(code: ksreenivasan/pruning_is_enough, algorithm `hc_iter`).

The weights stay frozen. Every weight gets a score p in [0, 1], drawn uniformly from the
problem's generator (the authors' default `unif` initialisation). The forward pass uses the
rounded mask [p > 0.5] of the weights still in play, and the gradient goes straight through the
rounding to p. The loss adds lambda * sum(p^2), the L2 regularisation that pulls scores toward
0, and p is clamped back to [0, 1] after every step. Every `period` epochs the scores are
rounded for good: the weights in play are cut down to round(total x density^(r / R)) on an
exponential schedule (r = 1..R roundings, R = epochs / period), keeping the largest p, and the
rest leave play with p = 0 (the authors' bottom-k pruning). The last rounding, after the last
epoch, keeps exactly round(density x weights): the final mask is the top-k of the scores, so it
meets the budget exactly. Biases are not masked.

Defaults: SGD with momentum 0.9, no weight decay (the L2 term takes its place), a cosine
schedule and batch size 128, as in the authors' ResNet-20 / CIFAR-10 configurations, which train
for 150 epochs, prune every 5 and use lambda = 3e-5. Here 10 epochs, pruning every 2, keep one
run on a width-100 host within seconds of CPU, and lambda is 1e-4 to act within that shorter
run. With so few steps the authors' lr of 0.1
barely moves the scores from their initialisation (the mean kept score drifts by less than 0.05
in the first period), so the rounding keeps what the random initialisation favoured; the default
lr is therefore 1.0. It was picked from {0.1, 0.3, 1.0} x lambda in {1e-5, 1e-4} on circle and
relu at density 0.1 and 0.05, width 100, depth 4, seeds 0 and 1, where it was best on both.

The readout scale. A sparse subnetwork of the planted host, the ticket above all, computes its
function only up to a tiny per-output scale (ticket output = c * target, with c about 1e-5 to
1e-3), and the judge fits that scale before measuring. Here the loss sees the outputs through a
readout: for regression, the least-squares scale of each output on the batch (detached); for
classification, the logits divided by their (detached) per-class batch RMS, times per-class scales
learned with the scores (not part of the mask, not regularised).

All problems of a group (`prune_group`) train their scores together, stacked along a leading
axis (`ScoreStack` from plantbench), each with its own generator for its scores and batch order, so a
mask does not depend on the problems beside it; `prune` is the group of one problem.
"""

import math

import torch

from plantbench import Mask, Pruner, prune_by_shape, schedules, weight_name


class GEMMiner(Pruner):
    name = "gem-miner"

    def __init__(self, epochs: int = 10, period: int = 2, lr: float = 1.0, momentum: float = 0.9,
                 lmbda: float = 1e-4, batch_size: int = 128):
        if int(epochs) < 0 or int(period) < 1 or int(batch_size) < 1:
            raise ValueError(f"need epochs >= 0, period >= 1 and batch_size >= 1, got {epochs}, {period}, {batch_size}")
        self.epochs = int(epochs)
        self.period = int(period)
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.lmbda = float(lmbda)
        self.batch_size = int(batch_size)

    def prune(self, problem):
        return self.prune_group([problem])[0]

    def prune_group(self, problems):
        """Every problem's scores trained together, problems of one shape in one stack."""
        return prune_by_shape(problems, self._prune_stack)

    def _prune_stack(self, stack):
        scores = stack.buffer([w.shape[1:] for w in stack.weights])
        with torch.no_grad():
            views = scores.views()
            for k, p in enumerate(stack.problems):  # uniform in [0, 1], from each problem's generator
                for l, w in enumerate(stack.weights):
                    views[l][k].copy_(torch.rand(w.shape[1:], generator=p.generator))
        alive = torch.zeros_like(scores.flat, dtype=torch.bool)
        alive[:sum(scores.sizes[:-1])] = True  # the padding is never in play
        readout = stack.readout_scales()
        groups = [{"params": [scores.flat]}]
        if readout is not None:
            groups.append({"params": [readout.flat]})
        opt = torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum)
        roundings = max(1, math.ceil(self.epochs / self.period))
        r = 0
        for epoch in range(self.epochs):
            for g in opt.param_groups:
                g["lr"] = schedules.cosine(self.lr, epoch, self.epochs)
            for x, y in stack.batches(self.batch_size):
                self._step(stack, scores, alive, readout, opt, x, y)
            if (epoch + 1) % self.period == 0 or epoch + 1 == self.epochs:
                r += 1
                self._round(stack, scores, alive, lambda p, r=r: schedules.exponential(p.density, r, roundings))
        if r < roundings:
            self._round(stack, scores, alive, lambda p: p.density)
        kept = scores.views(alive)
        return [Mask({weight_name(l): kept[l][k].clone() for l in range(len(kept))}) for k in range(stack.K)]

    def _step(self, stack, scores, alive, readout, opt, x, y):
        """One step on a batch of every problem: rounded masks forward, straight through backward."""
        views, live = scores.views(), [a.to(torch.float32) for a in scores.views(alive)]
        masks = [((p.detach() > 0.5) & (a > 0)).to(p.dtype) + (p - p.detach()) * a for p, a in zip(views, live)]
        loss = stack.loss(stack.forward(x, masks), y, None if readout is None else readout.views()[0])
        loss = loss + self.lmbda * sum((p * a).pow(2).sum() for p, a in zip(views, live))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            scores.flat.clamp_(0.0, 1.0).mul_(alive)

    @staticmethod
    def _round(stack, scores, alive, density):
        """Per problem, keep the largest scores among the weights in play, density(problem) x all
        its weights; the rest leave play with score 0."""
        with torch.no_grad():
            views, live = scores.views(), scores.views(alive)
            for k, p in enumerate(stack.problems):
                names = [weight_name(l) for l in range(len(views))]
                keep = Mask.top_k({n: v[k] for n, v in zip(names, views)}, density(p),
                                  within={n: a[k] for n, a in zip(names, live)})
                for n, v, a in zip(names, views, live):
                    v[k].mul_(keep[n])
                    a[k].copy_(keep[n])
