"""Magnitude pruning at initialisation: keep the weights of largest |w| (global ranking).

The simplest score pruner and the paper's baseline (Plant 'n' Seek, Sec. 4). Default: one shot,
global scope, as in the paper.
"""

from plantbench import ScorePruner


class Magnitude(ScorePruner):
    name = "magnitude"

    def score(self, problem, mask):
        return {n: p.detach().abs() for n, p in problem.model.prunable()}
