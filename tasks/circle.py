"""Circle classification (Plant 'n' Seek): four bands of x1^2 + x2^2, with about 1% label noise."""

import math

import numpy as np
import torch

from plantbench.task import KnotFit, Target, Task, alternating, ceil_int, knot_fit, register_task

BOUNDARIES = (0.2, 0.5, 0.7)
KNOTS = 10  # knots per coordinate in the x^2 approximation (K in the paper)


def _square(v):
    return v * v


@register_task
class Circle(Task):
    name = "circle"
    version = 1
    kind = "classification"
    n_in = 2
    n_out = 4
    min_depth = 2
    noise = 0.01
    description = "4 bands of x1^2+x2^2 split at 0.2/0.5/0.7, 1% labels moved to the next class"

    # The class logits are linear in r2 = x1^2 + x2^2 with slopes 5, 10, 20, 40; the offsets
    # place the crossings of neighbouring classes at the boundaries.
    slopes = tuple(5.0 * 2**j for j in range(len(BOUNDARIES) + 1))

    def offsets(self) -> np.ndarray:
        beta = [0.0]
        for j, r in enumerate(BOUNDARIES):
            beta.append(beta[-1] + (self.slopes[j] - self.slopes[j + 1]) * r)
        return np.array(beta)

    def _logits(self, r2: torch.Tensor) -> torch.Tensor:
        a = torch.tensor(self.slopes, dtype=torch.float64, device=r2.device)
        b = torch.as_tensor(self.offsets(), device=r2.device)
        return r2[:, None] * a + b

    def function(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(x.double().pow(2).sum(1)).argmax(1)

    def _noisy(self, x, g):
        logits = self._logits(x.double().pow(2).sum(1))
        top2 = logits.topk(2, dim=1).indices
        flip = torch.rand(x.shape[0], generator=g, dtype=torch.float64) < self.noise
        return torch.where(flip, top2[:, 1], top2[:, 0])

    def _readout(self, fits: list[KnotFit]) -> tuple[np.ndarray, np.ndarray]:
        """Output layer: logits_j = slope_j * (sum of the fitted squares) + offset_j."""
        out_w = np.concatenate([f.out_w for f in fits])
        a = np.array(self.slopes)
        return np.outer(a, out_w), a * sum(f.out_b for f in fits) + self.offsets()

    def target(self, depth: int) -> Target:
        self.check_depth(depth)
        K = KNOTS
        layers: list[tuple[np.ndarray, np.ndarray]] = []
        if depth == 2:
            # x_i^2 fitted directly on [-1, 1].
            fit = knot_fit(_square, np.linspace(-1, 1, K), alternating(K, last=-1))
            w = np.zeros((2 * K, 2))
            w[:K, 0] = w[K:, 1] = fit.in_w
            layers.append((w, np.concatenate([fit.in_b, fit.in_b])))
            layers.append(self._readout([fit, fit]))
            return _target(layers)

        # relu(x_i) and relu(-x_i): their sum is |x_i|.
        w = np.zeros((4, 2))
        w[0, 0], w[1, 0], w[2, 1], w[3, 1] = 1, -1, 1, -1
        layers.append((w, np.zeros(4)))
        if depth == 3:
            # The knot neurons read |x_i| straight from the two halves.
            fit = knot_fit(_square, np.linspace(0, 1, K), alternating(K, last=-1))
            w = np.zeros((2 * K, 4))
            w[:K, 0] = w[:K, 1] = fit.in_w
            w[K:, 2] = w[K:, 3] = fit.in_w
            layers.append((w, np.concatenate([fit.in_b, fit.in_b])))
            layers.append(self._readout([fit, fit]))
            return _target(layers)

        w = np.zeros((2, 4))
        w[0, :2] = w[1, 2:] = 1
        layers.append((w, np.zeros(2)))  # (|x1|, |x2|)
        folds = depth - 4
        if folds == 0:
            fit = knot_fit(_square, np.linspace(0, 1, K), alternating(K, last=1))
            w = np.zeros((2 * K, 2))
            w[:K, 0] = w[K:, 1] = fit.in_w
            layers.append((w, np.concatenate([fit.in_b, fit.in_b])))
            layers.append(self._readout([fit, fit]))
            return _target(layers)

        # Mirror layers: fold the point (|x1|, |x2|) about the line at angle phi_k = pi / 2^(k+1).
        # Three neurons hold v.q, relu(v_perp.q) and relu(-v_perp.q); the radius is kept and the
        # angle to the last line shrinks to at most phi_F, so the orthogonal part stays small.
        proj = np.eye(2)  # maps the current neurons to the point in the plane
        for k in range(1, folds + 1):
            phi = math.pi / 2 ** (k + 1)
            v = np.array([math.cos(phi), math.sin(phi)])
            v_perp = np.array([math.sin(phi), -math.cos(phi)])
            layers.append((np.stack([v @ proj, v_perp @ proj, -v_perp @ proj]), np.zeros(3)))
            proj = np.column_stack([v, v_perp, v_perp])
        # Knots are shared out by range: the orthogonal part only matters inside the last band.
        ortho_max = math.sin(phi) * math.sqrt(BOUNDARIES[-1]) + 0.01
        n_main = min(ceil_int(math.sqrt(2) / (ortho_max + math.sqrt(2)) * 2 * K), 2 * K - 3)
        n_ortho = max(2 * K - n_main, 3)
        main = knot_fit(_square, np.linspace(0, math.sqrt(2), n_main), alternating(n_main, last=1))
        ortho = knot_fit(_square, np.linspace(0, ortho_max, n_ortho), alternating(n_ortho, last=1))
        w = np.zeros((n_main + n_ortho, 3))
        w[:n_main, 0] = main.in_w
        w[n_main:, 1] = w[n_main:, 2] = ortho.in_w
        layers.append((w, np.concatenate([main.in_b, ortho.in_b])))
        layers.append(self._readout([main, ortho]))
        return _target(layers)


def _target(layers) -> Target:
    return Target(tuple(w for w, _ in layers), tuple(np.asarray(b, dtype=np.float64) for _, b in layers))
