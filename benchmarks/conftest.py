"""Benchmarks run on demand (python -m pytest benchmarks), never as part of the test suite."""

import pytest
import torch

from plantbench.plant import plant_task
from plantbench.task import get_task

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="session")
def circle_paper():
    """The paper suite's circle group: 5 seeds, 5 densities of random masks, plus the references."""
    from plantbench.judge import Entry

    task = get_task("circle")
    nets = {s: plant_task(task, 4, 100, s) for s in range(5)}
    data = {s: task.dataset(s) for s in range(5)}
    g = torch.Generator().manual_seed(0)
    entries = []
    for s in range(5):
        for i, d in enumerate((0.5, 0.1, 0.05, 0.01, nets[s].ticket_density)):
            entries.append(Entry(s, [torch.rand(w.shape, generator=g) < d for w in nets[s].weights], None, 10 * s + i))
        entries.append(Entry(s, nets[s].ticket_weights, nets[s].ticket_biases, 100 + s))
        entries.append(Entry(s, [torch.ones_like(w, dtype=torch.bool) for w in nets[s].weights], None, 200 + s))
    return task, nets, data, entries
