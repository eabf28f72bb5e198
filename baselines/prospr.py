"""ProsPr (Prospect Pruning): score weights by the meta-gradient through a few training steps.

Paper: M. Alizadeh, S. A. Tailor, L. M. Zintgraf, J. van Amersfoort, S. Farquhar, N. D. Lane and
Y. Gal, "Prospect Pruning: Finding Trainable Weights at Initialization using Meta-Gradients",
ICLR 2022 (code: mil-ad/prospr).

A mask m = 1 multiplies the initial weights, w_0 = m * w_init. Then `inner_steps` steps of SGD
train all weights and biases on the training loss, w_{k+1} = w_k - lr * grad L(w_k), and the
score of a weight is |dL(w_K)/dm|, differentiated through the whole inner trajectory (the full
second-order meta-gradient). The top weights are kept globally, in one shot. With zero inner
steps the score is SNIP's |w * dL/dw|.

Defaults, from the authors' command line: 3 inner steps, inner lr 0.1, no momentum, one batch
of 128 training samples used for every inner step and for the meta-loss (drawn with the
problem's generator), full meta-gradient. The loss is the task loss on the raw outputs.

Those defaults were set for image classifiers; on some planted regression hosts three steps of
SGD at lr 0.1 diverge and the meta-gradient comes out infinite or NaN. Then the inner lr is halved
and the scores computed again (at most `retries` times), so the method still ranks by a
meta-gradient of a trajectory that trains; hosts where the first trajectory is finite are scored
exactly as before.
"""



import torch
from torch.func import functional_call

from plantbench import Mask, Pruner


class ProsPr(Pruner):
    name = "prospr"

    def __init__(self, inner_steps: int = 3, inner_lr: float = 0.1, inner_momentum: float = 0.0,
                 batch_size: int = 128, retries: int = 10):
        if int(inner_steps) < 0 or int(batch_size) < 1:
            raise ValueError(f"need inner_steps >= 0 and batch_size >= 1, got {inner_steps}, {batch_size}")
        self.inner_steps = int(inner_steps)
        self.inner_lr = float(inner_lr)
        self.inner_momentum = float(inner_momentum)
        self.batch_size = int(batch_size)
        self.retries = max(0, int(retries))

    def scores(self, problem, x=None, y=None):
        """|dL(w_K)/dm| at m = 1 for every prunable weight, on the batch (x, y); the inner lr is
        halved while the trajectory diverges (see the module)."""
        if x is None:
            x, y = problem.sample(self.batch_size)
        lr = self.inner_lr
        for _ in range(self.retries):
            scores = self._scores(problem, x, y, lr)
            if all(bool(torch.isfinite(s).all()) for s in scores.values()):
                return scores
            lr /= 2
        return self._scores(problem, x, y, lr)

    def _scores(self, problem, x, y, lr: float):
        model = problem.model
        weights = dict(model.prunable())
        masks = {n: torch.ones_like(w, requires_grad=True) for n, w in weights.items()}
        names = [n for n, _ in model.named_parameters()]
        params = {n: p.detach() * masks[n] if n in masks else p.detach().clone().requires_grad_(True)
                  for n, p in model.named_parameters()}
        velocity = {n: None for n in names}
        for _ in range(self.inner_steps):
            loss = problem.loss(functional_call(model, params, (x,)), y)
            grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True)
            new = {}
            for n, g in zip(names, grads):
                if self.inner_momentum:
                    g = g if velocity[n] is None else self.inner_momentum * velocity[n] + g
                    velocity[n] = g
                new[n] = params[n] - lr * g
            params = new
        loss = problem.loss(functional_call(model, params, (x,)), y)
        grads = torch.autograd.grad(loss, list(masks.values()))
        return {n: g.abs() for n, g in zip(masks, grads)}

    def prune(self, problem):
        return Mask.top_k(self.scores(problem), problem.density)
