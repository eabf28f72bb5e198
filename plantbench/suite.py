"""Suites: everything that makes results comparable (tasks, host, density grid, seeds, protocol)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .registry import Registry
from .task import get_task
from .train import Protocol


@dataclass(frozen=True)
class Suite:
    """A versioned benchmark configuration; bump the version on any change to its fields.

    Attributes:
        depth: weight layers of every host (the paper's depth minus one).
        width: hidden width of every host.
        densities: the density grid; each task's ticket density is added unless
            add_ticket_density is False.
        seeds: run seeds 0..seeds-1.
        source_sha256: for a suite loaded from a TOML file (plantbench.suitefile), the file's
            sha256 (its name is never a registered suite's). None for registered suites.
    """

    name: str
    version: int
    description: str
    tasks: tuple[str, ...]
    depth: int
    width: int
    densities: tuple[float, ...]
    seeds: int
    protocol: Protocol = field(default_factory=Protocol)
    add_ticket_density: bool = True
    source_sha256: str | None = None

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def widths(self) -> list[int]:
        return [self.width] * (self.depth - 1)

    def ticket_density(self, task_name: str) -> float:
        return ticket_density(task_name, self.depth, self.widths)

    def grid(self, task_name: str, densities: tuple[float, ...] | None = None) -> list[float]:
        """The densities to run for one task, highest first, the ticket's own included unless the
        suite leaves it out."""
        chosen = set(densities if densities else self.densities)
        if self.add_ticket_density:
            chosen.add(self.ticket_density(task_name))
        return sorted(chosen, reverse=True)


def ticket_density(task_name: str, depth: int, widths: list[int]) -> float:
    """The planted ticket's weight count over the host's, computed without planting."""
    task = get_task(task_name)
    target = task.target(depth)
    sizes = [task.n_in, *widths, task.n_out]
    return target.n_weights / sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


PAPER_TASKS = ("relu", "circle", "helix")
PAPER_GRID = (0.5, 0.1, 0.05, 0.01)
# Circle with exactly this fraction of labels moved to the next-closest class (tasks/circle_noise.py).
NOISE_TASKS = ("circle-noise0", "circle-noise0.001", "circle-noise0.01", "circle-noise0.1")
# Random sparse teachers (tasks/teacher.py), easy to hard; w8/w16/w32 vary the width, w16/k4/k8 the fan-in.
# On the paper's host a run costs what a paper run costs (measured: docs/design-notes.md).
TEACHER_TASKS = ("teacher-easy", "teacher-cls-easy", "teacher-w8", "teacher-w16", "teacher-w32", "teacher-k4",
                 "teacher-k8", "teacher-cls")

# wide's seeds were set by an estimate before plantbench judged it: one run trains a
# 3-million-weight host for 10 epochs (2,820 Adam steps of batch 32), at 0.051 CPU-seconds a step
# in a plain PyTorch loop on one core, about 2.4 CPU-minutes a run. The stacked judge, with sparse
# products for its sparsest layers, measured much less on 2 cores: about 8 s of judge time a run,
# 77 s wall for magnitude's 12 runs once the references exist, 3.5 minutes for the 6 reference
# trainings, 11.5 minutes for edge-popup (README, "Suites"). More seeds would make a wide@2.
WIDE_DESCRIPTION = ("Circle at the paper's depth 6 (ours 5) in a width-1000 host (ticket density 4e-5); "
                    "3 seeds, each run training 3 million weights")

SUITES: Registry[Suite] = Registry("suite")
for _suite in (
    Suite("paper", 1, "Plant 'n' Seek main protocol: depth 4 (the paper's 5), width 100, 5 seeds",
          PAPER_TASKS, depth=4, width=100, densities=PAPER_GRID, seeds=5),
    Suite("depth2", 1, "the paper's appendix at its depth 3 (ours 2), width 100, 5 seeds",
          PAPER_TASKS, depth=2, width=100, densities=PAPER_GRID, seeds=5),
    Suite("depth9", 1, "the paper's appendix at its depth 10 (ours 9), width 100, 5 seeds",
          PAPER_TASKS, depth=9, width=100, densities=PAPER_GRID, seeds=5),
    Suite("wide", 1, WIDE_DESCRIPTION, ("circle",), depth=5, width=1000, densities=(0.1, 0.01, 0.001), seeds=3),
    Suite("noise", 1, "Circle with 0 / 0.1% / 1% / 10% of labels moved to the next class; depth 4, width 100, 5 seeds",
          NOISE_TASKS, depth=4, width=100, densities=PAPER_GRID, seeds=5),
    Suite("teacher", 1, "random sparse ReLU teachers of growing width and fan-in (ticket densities 0.001 to 0.02); "
          "depth 4, width 100, 5 seeds", TEACHER_TASKS, depth=4, width=100, densities=PAPER_GRID, seeds=5),
    Suite("quick", 1, "seconds: a smoke test of every task (width 32, depth 3, 2 seeds, 1 epoch)",
          ("relu", "circle", "helix"), depth=3, width=32, densities=(0.1,), seeds=2, protocol=Protocol(epochs=1)),
):
    SUITES.register(_suite.name, _suite)

# Plant 'n' Seek's real-data experiment at small scale (tasks/digits.py): a trained 271-weight
# ticket of the width-100 host planted back into fresh hosts of width 100 and, 7 times the weights, 300.
# A run is cheap: judging trains the masked host for 10 epochs of 43 Adam steps, measured at 0.2
# CPU-seconds on one core at width 100 and 0.8 at width 300; a one-seed magnitude sweep (5 runs and
# 2 reference trainings, process start included) took 45 and 62 CPU-seconds.
for _suite in (
    Suite("digits", 1, "handwritten digits: a trained SynFlow ticket of a width-100 host planted back into "
          "a fresh one; depth 4, width 100, 5 seeds", ("digits",), depth=4, width=100, densities=PAPER_GRID, seeds=5),
    Suite("digits-wide", 1, "the digits ticket in hosts of width 300 (ticket density 0.0013); depth 4, 5 seeds",
          ("digits",), depth=4, width=300, densities=PAPER_GRID, seeds=5),
):
    SUITES.register(_suite.name, _suite)


def get_suite(name: str) -> Suite:
    return SUITES.get(name)
