"""Handwritten digits: a trained ticket planted back into a fresh host (Plant 'n' Seek's real-data experiment).

Plant 'n' Seek's fourth experiment took a SynFlow ticket of VGG16 trained on CIFAR-10 and planted
it into a fresh VGG16. This task is that experiment at a scale a CPU runs in seconds:

- Data: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes, nothing is
  downloaded), pixel values 0..16 scaled to [-1, 1] as x / 8 - 1. The split is fixed: a quarter of
  each class (rounded) is the test split, drawn once from a torch.Generator seeded with
  SPLIT_SEED, so every run seed sees the same 1,347 training and 450 test images. A run seed only
  changes the host the ticket is planted into (and with it where the ticket sits and its scale c).
  `sample(n, g)` draws n test images with replacement from g: the only images the ticket was not
  trained on. The labels are the recorded ones (no label noise), and `function` looks them up.
- Ticket: a sparse depth-4 MLP (64 inputs, 10 outputs) stored in digits_ticket/ticket.npz. It was
  found by plantbench's own multi-shot SynFlow in a He-initialised 64-100-100-100-10 host at
  density 0.01, trained on the training split and cut down to the neurons on an input-to-output
  path; digits_ticket/regenerate.py recomputes it, and the file's `meta` records how, with the
  ticket's measured test accuracy. Deeper hosts get identity layers at the ticket's narrowest
  hidden layer, as Plant 'n' Seek's Algorithm 1 does for the hand-built tickets.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import torch

from plantbench.errors import UsageError
from plantbench.task import Dataset, Target, Task, identity_layers, register_task

TICKET_FILE = Path(__file__).resolve().parent / "digits_ticket" / "ticket.npz"
SPLIT_SEED = 0  # seeds the one fixed stratified split
TEST_FRACTION = 0.25  # of every class, rounded
LEVELS = 16  # pixel values run 0..16


@cache
def _images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images as float32 [n, 64] in [-1, 1] and their labels (int64), in the bundled order."""
    # Imported on first use, so that registering the task stays cheap.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float64).div_(LEVELS / 2).sub_(1).float()
    return x, torch.as_tensor(bunch.target, dtype=torch.int64)


@cache
def _split() -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and test images: per class, the first round(TEST_FRACTION x count)
    of a seeded permutation are test images. Both sorted, so the split keeps the bundled order."""
    _, y = _images()
    g = torch.Generator().manual_seed(SPLIT_SEED)
    test = []
    for c in range(int(y.max()) + 1):
        members = torch.nonzero(y == c)[:, 0]
        test.append(members[torch.randperm(len(members), generator=g)[: round(TEST_FRACTION * len(members))]])
    is_test = torch.zeros(len(y), dtype=torch.bool)
    is_test[torch.cat(test)] = True
    return torch.nonzero(~is_test)[:, 0], torch.nonzero(is_test)[:, 0]


@cache
def _labels_by_image() -> dict[bytes, int]:
    x, y = _images()
    return {row.tobytes(): int(label) for row, label in zip(_pixels(x), y.tolist())}


def _pixels(x: torch.Tensor) -> np.ndarray:
    """Inputs in [-1, 1] back to the pixel values 0..16 (uint8), the key of each image."""
    return np.rint((x.detach().double().cpu().numpy() + 1) * (LEVELS / 2)).clip(0, 255).astype(np.uint8)


@cache
def load_ticket(path: Path = TICKET_FILE) -> tuple[Target, dict]:
    """The stored ticket (float64 weights [out, in] and biases, w0..w3 and b0..b3) and its meta."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        depth = int(meta["depth"])
        target = Target(tuple(z[f"w{l}"] for l in range(depth)), tuple(z[f"b{l}"] for l in range(depth)))
    return target, meta


def deepen(target: Target, depth: int) -> Target:
    """The same function with `depth` weight layers: identity layers after the narrowest hidden layer.

    The hidden activations are ReLU outputs, never negative, so relu(I h) = h passes them on; the
    narrowest layer costs the fewest extra weights.
    """
    extra = depth - target.depth
    if extra <= 0:
        return target
    sizes = target.sizes[1:-1]
    at = int(np.argmin(sizes)) + 1  # the identity layers follow weight layer `at - 1`
    ident = identity_layers(sizes[at - 1], extra)
    weights = [*target.weights[:at], *(w for w, _ in ident), *target.weights[at:]]
    biases = [*target.biases[:at], *(b for _, b in ident), *target.biases[at:]]
    return Target(tuple(weights), tuple(biases))


@register_task
class Digits(Task):
    name = "digits"
    version = 1
    kind = "classification"
    n_in = 64
    n_out = 10
    min_depth = 4  # the stored ticket's own depth
    noise = 0.0
    n_samples = 1797
    test_fraction = TEST_FRACTION
    image_shape = (8, 8)  # how an input row is drawn as a picture
    description = ("scikit-learn's 8x8 handwritten digits, fixed stratified split (1,347 train, 450 test); "
                   "ticket: a trained multi-shot SynFlow ticket of a width-100 host")

    @property
    def ticket_meta(self) -> dict:
        """How the stored ticket was made and what it measured (test_accuracy, n_weights, ...)."""
        return dict(load_ticket()[1])

    def target(self, depth: int) -> Target:
        return deepen(load_ticket()[0], self.check_depth(depth))

    def function(self, x: torch.Tensor) -> torch.Tensor:
        """The recorded label of each input row, which must be one of the 1,797 images."""
        table = _labels_by_image()
        rows = _pixels(x)
        out = [table.get(r.tobytes(), -1) for r in rows]
        if -1 in out:
            raise UsageError(f"digits: input row {out.index(-1)} is not one of the 1,797 images")
        return torch.tensor(out, dtype=torch.int64)

    def _noisy(self, x, g):
        return self.function(x)

    def sample(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n test images drawn with replacement from g, and their labels."""
        d = self.dataset(0)
        idx = torch.randint(len(d.y_test), (int(n),), generator=g)
        return d.x_test[idx], d.y_test[idx]

    def dataset(self, seed: int) -> Dataset:
        """The fixed split, the same for every seed (a copy, so a caller may change it)."""
        x, y = _images()
        train, test = _split()
        return Dataset(x[train].clone(), y[train].clone(), x[test].clone(), y[test].clone())
