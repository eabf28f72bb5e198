"""Shared fixtures: small planted problems and tiny hand-checkable networks."""

import pytest
import torch

from plantbench.network import HostMLP
from plantbench.pruner import PruneProblem, TaskInfo
from plantbench.task import get_task
from plantbench.train import Protocol


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


def tiny_problem(weights, biases, x, y, density=0.5, kind="regression", n_out=None):
    """A PruneProblem around a hand-made network."""
    model = HostMLP([torch.as_tensor(w, dtype=torch.float32) for w in weights],
                    [torch.as_tensor(b, dtype=torch.float32) for b in biases])
    info = TaskInfo("tiny", 1, kind, model.sizes[0], n_out or model.sizes[-1], "mse" if kind == "regression" else "accuracy")
    return PruneProblem(model, x, y, density, info, torch.Generator().manual_seed(0), "cpu", Protocol())


@pytest.fixture
def circle():
    return get_task("circle")


@pytest.fixture(autouse=True)
def _own_reference_cache(monkeypatch, tmp_path_factory):
    """Each test its own, empty reference cache: none reads or fills the user's."""
    monkeypatch.setenv("PLANTBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
