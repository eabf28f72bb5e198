"""Random pruning: keep a uniformly random set of weights, drawn from the problem's generator.

Plant 'n' Seek's sanity baseline. Default: global uniform scores, so each layer keeps the
density in expectation.
"""

import torch

from plantbench import ScorePruner


class Random(ScorePruner):
    name = "random"

    def score(self, problem, mask):
        return {n: torch.rand(p.shape, generator=problem.generator).to(p.device) for n, p in problem.model.prunable()}
