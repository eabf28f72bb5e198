"""The show picture renders for every registered task, as PNG and as SVG."""

import numpy as np
import pytest

from plantbench.show import render
from plantbench.task import TASKS, Target, Task

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", TASKS.names())
def test_render_png(tmp_path, name):
    out = render(name, depth=4, width=40, seed=0, out=tmp_path / f"{name}.png")
    assert out == tmp_path / f"{name}.png"
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left behind


def test_render_svg(tmp_path):
    out = render(TASKS.names()[0], depth=4, width=40, seed=0, out=tmp_path / "show.svg")
    text = out.read_text()
    assert out.suffix == ".svg"
    assert "<svg" in text[:2_000]
    assert len(text) > 10_000


def test_render_adds_png_suffix(tmp_path):
    out = render(TASKS.names()[0], depth=4, width=40, seed=0, out=tmp_path / "show")
    assert out.name == "show.png"
    assert out.read_bytes().startswith(PNG_MAGIC)


class _Dense(Task):
    """An unregistered task with shapes none of the native pictures cover."""

    version = 1
    min_depth = 2
    noise = 0.0
    n_samples = 500

    def __init__(self, kind, n_in, n_out):
        self.name, self.kind, self.n_in, self.n_out = f"dense-{kind}-{n_in}-{n_out}", kind, n_in, n_out

    def target(self, depth):
        rng = np.random.default_rng(0)
        sizes = [self.n_in] + [3] * (depth - 1) + [self.n_out]
        return Target(tuple(rng.normal(size=(b, a)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)),
                      tuple(rng.normal(size=b) for b in sizes[1:]))

    def function(self, x):
        out = self.target(2).forward(x)
        return out.argmax(1) if self.kind == "classification" else out

    def _noisy(self, x, g):
        return self.function(x) if self.kind == "classification" else self.function(x).float()


@pytest.mark.parametrize("kind,n_in,n_out", [("regression", 3, 2), ("classification", 3, 2),
                                             ("regression", 1, 2)])
def test_render_other_shapes(tmp_path, kind, n_in, n_out):
    out = render(_Dense(kind, n_in, n_out), depth=2, width=8, seed=0, out=tmp_path / "x.png")
    assert out.read_bytes().startswith(PNG_MAGIC)
