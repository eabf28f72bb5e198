"""Helix regression (Plant 'n' Seek): a 3-D helix traced by a 1-D input, fitted with 30 knots."""

import math

import numpy as np
import torch

from plantbench.task import Target, Task, alternating, identity_layers, knot_fit, register_task

KNOTS = 30


def helix(x):
    """The three outputs at x: t cos t / 8pi, t sin t / 8pi, t / 8pi with t = 5pi + 3pi x."""
    t = 5 * math.pi + 3 * math.pi * x
    return (t * np.cos(t) / (8 * math.pi), t * np.sin(t) / (8 * math.pi), t / (8 * math.pi))


@register_task
class Helix(Task):
    name = "helix"
    version = 1
    kind = "regression"
    n_in = 1
    n_out = 3
    min_depth = 2
    noise = 0.01
    description = "(t cos t, t sin t, t) / 8pi with t = 5pi + 3pi x, plus N(0, 0.01^2)"

    def function(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()[:, 0].cpu().numpy()
        return torch.from_numpy(np.stack(helix(x), axis=1))

    def _noisy(self, x, g):
        y = self.function(x)
        return (y + self.noise * torch.randn(y.shape, generator=g, dtype=torch.float64)).float()

    def target(self, depth: int) -> Target:
        self.check_depth(depth)
        signs = alternating(KNOTS)
        if depth == 2:
            knots, shift, layers = np.linspace(-1, 1, KNOTS), 0.0, []
        else:
            # u = relu(x + 1) moves the input onto [0, 2], where every knot neuron starts.
            knots, shift, layers = np.linspace(0, 2, KNOTS), 1.0, [(np.ones((1, 1)), np.ones(1))]
        fits = [knot_fit(lambda u, j=j: helix(u - shift)[j], knots, signs) for j in range(3)]
        layers.append((fits[0].in_w[:, None], fits[0].in_b))
        out_b = np.array([f.out_b for f in fits])
        extra = max(depth - 3, 0)
        if extra:
            # The outputs lie in [-1, 1]; lifting them by 1 lets identity ReLU layers carry them.
            out_b = out_b + 1
        layers.append((np.stack([f.out_w for f in fits]), out_b))
        layers += identity_layers(3, extra)
        if extra:
            layers[-1] = (layers[-1][0], -np.ones(3))
        return Target(tuple(w for w, _ in layers), tuple(b for _, b in layers))
