"""Multi-shot GraSP as the Plant 'n' Seek code ran it: biases scored and pruned inside the budget.

An experiment behind docs/paper_findings.md ("Multi-shot: GraSP collapses early"), written as a
user's pruner file. It differs from the registered `grasp-multishot` in two switches:

- `count_biases` (default true): biases are scored like weights and ranked in one global top-k
  whose size is density x (weights + biases), the budget of the paper's code. A pruned bias is
  zero and stays zero in training. plantbench's own budget counts weights only, so if the joint
  ranking keeps more weights than density x weights, the lowest-scoring extra weights are dropped
  at the end. In the paper suite this happens only at density 0.5, where it drops 0.7% to 1.5%
  of the kept weights.
- `sign` (default 1): 1 keeps the highest w * Hg (the GraSP authors' code and the registered
  `grasp`); -1 keeps the lowest, the other convention found in reimplementations.

Rounds, epochs, pruning batch and temperature are those of `grasp-multishot`.

    plantbench run --pruner docs/experiments/grasp_paper_budget.py --suite paper
    plantbench run --pruner docs/experiments/grasp_paper_budget.py --pruner-arg count_biases=false \
        --pruner-arg sign=-1 --suite paper
"""

import copy

import torch

from plantbench import Mask, Pruner


class GraSPPaperBudget(Pruner):
    name = "grasp-paper-budget"

    def __init__(self, count_biases: bool = True, sign: int = 1, rounds: int = 10, epochs: int = 5,
                 samples: int = 40, temperature: float = 200.0):
        if sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1, got {sign}")
        self.count_biases = bool(count_biases)
        self.sign = int(sign)
        self.rounds, self.epochs = int(rounds), int(epochs)
        self.samples, self.temperature = int(samples), float(temperature)

    def ranked(self, model):
        """(name, parameter) for everything the budget covers: the weights, and the biases if counted."""
        params = list(model.prunable())
        if self.count_biases:
            params += [(f"layers.{l}.bias", layer.bias) for l, layer in enumerate(model.layers)]
        return params

    def score(self, problem, mask):
        """sign * w * (H g) for every ranked parameter, at the current mask (as `grasp` does)."""
        model = problem.model
        x, y = problem.sample(self.samples)
        names, params = zip(*self.ranked(model))
        gates = {n: m.to(torch.float32) for n, m in mask.items()}

        def loss():
            return problem.loss(model(x, mask=gates) / self.temperature, y)

        g = [t.detach() for t in torch.autograd.grad(loss(), params)]
        grads = torch.autograd.grad(loss(), params, create_graph=True)
        hg = torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, grads)), params, allow_unused=True)
        return {n: self.sign * p.detach() * (torch.zeros_like(p) if h is None else h.detach())
                for n, p, h in zip(names, params, hg)}

    def prune(self, problem):
        model = problem.model
        initial = copy.deepcopy(model.state_dict())
        mask = {n: torch.ones_like(p, dtype=torch.bool) for n, p in self.ranked(model)}
        for r in range(1, self.rounds + 1):
            problem.train(mask, self.epochs)
            scores = self.score(problem, mask)
            mask = dict(Mask.top_k(scores, problem.density ** (r / self.rounds), within=mask))
            model.load_state_dict(initial)
        weights = [n for n, _ in model.prunable()]
        n_weights = sum(mask[n].numel() for n in weights)
        allowed = round(problem.density * n_weights)
        if sum(int(mask[n].sum()) for n in weights) > allowed:
            mask.update(Mask.top_k({n: scores[n] for n in weights}, allowed / n_weights, within=mask))
        return Mask(mask)
