"""Recompute the digits task's ticket (ticket.npz beside this file) from scratch, deterministically.

    python tasks/digits_ticket/regenerate.py            # writes ticket.npz
    python tasks/digits_ticket/regenerate.py --check    # recomputes it and compares with ticket.npz

The search is plantbench's own multi-shot SynFlow (baselines/synflow.py) on a He-initialised
64-100-100-100-10 host, the `digits` suite's host, at density 0.01 (Plant 'n' Seek found its VGG16
ticket at density 0.01 too): 30 rounds of 20 epochs of train, prune, rewind. The ticket is then
trained from the host's initialisation for 200 epochs under its mask, and cut down to the neurons
on some input-to-output path (a neuron no input reaches computes a constant, which moves into the
biases of the layer above). Training uses the standard protocol (Adam, lr 1e-3, batch 32) on the
task's fixed training split. Everything runs in float64 on one thread, with every random number
from a seeded torch.Generator, so a run reproduces the stored file; it takes about a minute on
one CPU core.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from plantbench.baselines.synflow import SynFlowMultiShot
from plantbench.tasks.digits import TICKET_FILE, Digits

from plantbench.network import HostMLP, weight_name
from plantbench.plant import host_init
from plantbench.pruner import PruneProblem, TaskInfo
from plantbench.task import Target
from plantbench.train import Protocol


@dataclass(frozen=True)
class SearchConfig:
    """Everything that fixes the ticket; stored in the ticket's meta."""

    width: int = 100
    depth: int = 4
    density: float = 0.01
    rounds: int = 30  # multi-shot SynFlow rounds, pruning to density^(r/rounds)
    epochs: int = 20  # training epochs per round
    train_epochs: int = 200  # final training of the ticket under its mask
    host_seed: int = 2022  # the search host's generator
    pruner_seed: int = 2023  # batch order of every training


def search(cfg: SearchConfig) -> tuple[Target, dict]:
    """Find, train and compact the ticket; returns it with its meta (config, sizes, accuracies)."""
    task = Digits()
    data = task.dataset(0)
    sizes = [task.n_in, *[cfg.width] * (cfg.depth - 1), task.n_out]
    weights, biases = host_init(sizes, torch.Generator().manual_seed(cfg.host_seed))
    model = HostMLP([w.double() for w in weights], [b.double() for b in biases])
    info = TaskInfo(task.name, task.version, task.kind, task.n_in, task.n_out, task.metric.name)
    problem = PruneProblem(model, data.x_train.double(), data.y_train, cfg.density, info,
                           torch.Generator().manual_seed(cfg.pruner_seed), "cpu", Protocol())
    mask = SynFlowMultiShot(rounds=cfg.rounds, epochs=cfg.epochs).prune(problem)
    problem.train(mask, cfg.train_epochs)
    with torch.no_grad():
        trained = [(lin.weight * mask[weight_name(l)]).numpy().copy() for l, lin in enumerate(model.layers)]
        trained_b = [lin.bias.numpy().copy() for lin in model.layers]
    target = compact(trained, trained_b)
    meta = {"depth": target.depth, "sizes": target.sizes, "n_weights": target.n_weights,
            "kept_in_host": int(sum(int(m.sum()) for m in mask.values())),
            "test_accuracy": accuracy(target, data.x_test, data.y_test),
            "train_accuracy": accuracy(target, data.x_train, data.y_train),
            "n_train": len(data.y_train), "n_test": len(data.y_test),
            "search": {"method": "synflow-multishot", "host_sizes": sizes, "dtype": "float64",
                       **dataclasses.asdict(cfg),
                       "protocol": {k: v for k, v in Protocol().to_dict().items() if k != "epochs"}}}
    return target, json.loads(json.dumps(meta))  # as stored: tuples become lists


def compact(weights: list[np.ndarray], biases: list[np.ndarray]) -> Target:
    """The network cut down to the hidden neurons on some input-to-output path of nonzero weights.

    A neuron that no input reaches computes a constant; its contribution moves into the biases of
    the layer above. A neuron that reaches no output is dropped. Inputs and outputs all stay.
    Args:
        weights, biases: float64 [out, in] and [out] per layer, pruned weights zero.
    """
    nz = [(w != 0).astype(np.int64) for w in weights]
    fwd = [np.ones(weights[0].shape[1], dtype=bool)]
    for m in nz:
        fwd.append(m @ fwd[-1] > 0)
    bwd = [np.ones(weights[-1].shape[0], dtype=bool)]
    for m in reversed(nz):
        bwd.insert(0, bwd[0] @ m > 0)
    keep = [np.ones_like(fwd[0]), *(f & b for f, b in zip(fwd[1:-1], bwd[1:-1])), np.ones_like(bwd[-1])]
    if not all(k.any() for k in keep):
        raise ValueError("the mask leaves no path from the inputs to the outputs")
    const = np.zeros(weights[0].shape[1])  # the constant value of each unreached neuron (inputs: none)
    new_w, new_b = [], []
    for l, (w, b) in enumerate(zip(weights, biases)):
        unreached = ~fwd[l]
        shift = w[:, unreached] @ const[unreached]
        new_w.append(w[keep[l + 1]][:, keep[l]])
        new_b.append(b[keep[l + 1]] + shift[keep[l + 1]])
        const = np.maximum(b + shift, 0.0) if l < len(weights) - 1 else b + shift
    return Target(tuple(new_w), tuple(new_b))


def accuracy(target: Target, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((target.forward(x).argmax(1) == y).double().mean())


def save(target: Target, meta: dict, path: Path) -> None:
    arrays = {f"w{l}": w for l, w in enumerate(target.weights)}
    arrays.update({f"b{l}": b for l, b in enumerate(target.biases)})
    np.savez(path, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)


def differences(target: Target, meta: dict, path: Path) -> list[str]:
    """What differs between a recomputed ticket and the stored one; empty when they agree."""
    with np.load(path, allow_pickle=False) as z:
        stored = json.loads(str(z["meta"]))
        found = []
        if stored != meta:
            keys = sorted(k for k in {*stored, *meta} if stored.get(k) != meta.get(k))
            found.append(f"meta differs in {', '.join(keys)}")
        for l in range(target.depth):
            for name, new in ((f"w{l}", target.weights[l]), (f"b{l}", target.biases[l])):
                old = z[name] if name in z else None
                if old is None or old.shape != new.shape or not np.array_equal(old != 0, new != 0):
                    found.append(f"{name}: a different shape or nonzero pattern")
                elif not np.array_equal(old, new):
                    found.append(f"{name}: values differ by up to {np.abs(old - new).max():.3g}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the stored ticket instead of writing")
    parser.add_argument("--out", type=Path, default=TICKET_FILE, help="where to write (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one thread: the same sums in the same order on every run
    start = time.perf_counter()
    target, meta = search(SearchConfig())
    took = time.perf_counter() - start
    print(f"ticket: {meta['n_weights']} weights, sizes {meta['sizes']}, test accuracy {meta['test_accuracy']:.4f}, "
          f"train accuracy {meta['train_accuracy']:.4f} ({took:.0f} s)")
    if args.check:
        found = differences(target, meta, TICKET_FILE)
        print("\n".join(found) if found else f"identical to {TICKET_FILE}")
        return 1 if found else 0
    save(target, meta, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
