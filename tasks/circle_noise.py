"""Circle with a chosen label-noise level (the paper's appendix): circle-noise<level>@1.

Each task moves exactly round(level * n) of every n sampled labels to the next-closest class,
the samples drawn uniformly without replacement, so the levels 0, 0.001, 0.01 and 0.1 of the
`noise` suite are exact rather than expected fractions. The inputs and the ticket are Circle's:
for a seed, x is the same as in circle@1. circle@1 itself keeps its own rule (each label moved
with probability 0.01), so its data and its results stay as they were recorded.
"""

import torch

from plantbench.task import register_task

from .circle import Circle

LEVELS = (0.0, 0.001, 0.01, 0.1)


class CircleNoise(Circle):
    """Circle whose noise is an exact fraction of moved labels."""

    version = 1

    def _noisy(self, x, g):
        logits = self._logits(x.double().pow(2).sum(1))
        top2 = logits.topk(2, dim=1).indices
        n = x.shape[0]
        moved = torch.randperm(n, generator=g)[: int(round(self.noise * n))]
        y = top2[:, 0].clone()
        y[moved] = top2[moved, 1]
        return y


def noise_task_name(level: float) -> str:
    return f"circle-noise{level:g}"


for _level in LEVELS:
    register_task(type(f"CircleNoise{_level:g}".replace(".", "_"), (CircleNoise,), {
        "name": noise_task_name(_level),
        "noise": _level,
        "description": f"Circle with exactly {_level:g} of the labels moved to the next-closest class",
    }))
