"""ReLU regression (Plant 'n' Seek): y = max(0, x) + noise; the ticket is one path of unit weights."""

import numpy as np
import torch

from plantbench.task import Target, Task, register_task


@register_task
class ReLU(Task):
    name = "relu"
    version = 1
    kind = "regression"
    n_in = 1
    n_out = 1
    min_depth = 2
    noise = 0.01
    description = "y = relu(x) + N(0, 0.01^2); ticket: a single path of weights 1"

    def target(self, depth: int) -> Target:
        self.check_depth(depth)
        # Every layer passes relu(x) on unchanged; depth L gives L nonzero weights.
        return Target(tuple(np.ones((1, 1)) for _ in range(depth)),
                      tuple(np.zeros(1) for _ in range(depth)))

    def function(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.double()[:, :1])

    def _noisy(self, x, g):
        y = self.function(x)
        return (y + self.noise * torch.randn(y.shape, generator=g, dtype=torch.float64)).float()
