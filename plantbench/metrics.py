"""Metric declarations: ranking and aggregation code reads these, never a hard-coded rule."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Metric:
    """How one task metric is read.

    Attributes:
        name: "accuracy" or "mse".
        higher_is_better: the direction of improvement.
        log_scale: normalise and plot on log values (errors spanning decades).
    """

    name: str
    higher_is_better: bool
    log_scale: bool

    def normalise(self, value: float, chance: float, ticket: float) -> float:
        """(metric - chance) / (ticket - chance), on log values for log-scale metrics.

        1 means as good as the planted ticket, 0 means no better than chance.
        """
        import math

        if not all(map(math.isfinite, (value, chance, ticket))):
            return float("nan")
        if self.log_scale:
            if min(value, chance, ticket) <= 0:
                return float("nan")
            value, chance, ticket = math.log(value), math.log(chance), math.log(ticket)
        span = ticket - chance
        if span == 0:
            return float("nan")
        return (value - chance) / span

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b


ACCURACY = Metric("accuracy", higher_is_better=True, log_scale=False)
MSE = Metric("mse", higher_is_better=False, log_scale=True)
METRICS = {m.name: m for m in (ACCURACY, MSE)}


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy over the last-but-one axis: logits [..., n, C], y [..., n] -> [...]."""
    return (logits.argmax(-1) == y).to(torch.float64).mean(-1)


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over samples and outputs: pred, y [..., n, d] -> [...]."""
    return (pred.to(torch.float64) - y.to(torch.float64)).pow(2).mean(dim=(-2, -1))
