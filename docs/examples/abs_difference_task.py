"""A task of one's own: y = |x1| - |x2| plus noise, for plantbench's --task FILE.py.

The README's example of a task file. A task is a data sampler (inputs uniform on [-1, 1]^n_in,
drawn by `Task.sample`, and the noisy targets `_noisy` adds), a metric (MSE for regression,
accuracy for classification, picked by `kind`) and the sparse target network, the ticket, that
`target(depth)` builds by hand: here |x| = relu(x) + relu(-x) in the first layer, identity
layers after it (the hidden values are never negative, so ReLU passes them on) and the
difference in the last. The ticket's widest hidden layer (4 neurons) is the minimum host width.

    plantbench show docs/examples/abs_difference_task.py --depth 3 --width 8
    plantbench plant --task docs/examples/abs_difference_task.py --depth 3 --width 8
    plantbench run --pruner magnitude --suite docs/examples/abs_difference_suite.toml

File tasks are for one's own experiments: their runs record the file's sha256 and never go on
the leaderboard.
"""

import numpy as np
import torch

from plantbench.task import Target, Task, identity_layers


class AbsDifference(Task):
    name = "abs-difference"  # results call it abs-difference@1
    version = 1  # bump on any change to the data, the ticket or the noise
    kind = "regression"
    n_in = 2
    n_out = 1
    min_depth = 2  # one hidden layer at least: |x| needs a ReLU
    noise = 0.01
    description = "y = |x1| - |x2| + N(0, 0.01^2); ticket: relu(+-x) pairs, then their signed sum"
    n_samples = 2000  # a small data set keeps example runs quick

    def target(self, depth: int) -> Target:
        self.check_depth(depth)
        # Hidden neurons: relu(x1), relu(-x1), relu(x2), relu(-x2).
        first = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        middle = identity_layers(4, depth - 2)
        last = np.array([[1.0, 1.0, -1.0, -1.0]])
        weights = (first, *(w for w, _ in middle), last)
        biases = (np.zeros(4), *(b for _, b in middle), np.zeros(1))
        return Target(weights, biases)

    def function(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        return (x[:, 0].abs() - x[:, 1].abs()).unsqueeze(1)

    def _noisy(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        y = self.function(x)
        return (y + self.noise * torch.randn(y.shape, generator=g, dtype=torch.float64)).float()
