"""Trusted scoring: fit the readout on the training split, then measure masks against the ticket.

All networks of one task and architecture are judged together: their parameters and masks are
stacked along a leading axis K, so one batched pass (and one lockstep training) serves every
density, seed and reference; a network with few live neurons is stacked with others of its
compacted size instead (plantbench.compact). `judge_with_references` is that batch as
`plantbench run` and `plantbench leaderboard check` both use it: the runs' masks plus each
seed's planted ticket and dense host, which give the references every record is normalised by.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import torch

from . import compact as compaction
from . import sparse as sparsity
from .network import stacked_forward
from .plant import PlantedNetwork
from .seeding import stable_int
from .task import Dataset, Task
from .train import LONE_PAIR, Protocol, train_stacked

_EVAL_BYTES = 1 << 28  # activation memory per evaluation chunk


@dataclass
class Entry:
    """One network to judge: a mask on the host planted from `seed`.

    Attributes:
        seed: the run seed whose planted network and data to use.
        weights: per layer bool [out, in].
        biases: per layer bool [out]; None keeps every bias.
        batch_seed: seeds this run's batch order in weak training, independent of its batch mates.
    """

    seed: int
    weights: list[torch.Tensor]
    biases: list[torch.Tensor] | None
    batch_seed: int


# --- the readout rule ---------------------------------------------------------------------


def fit_regression_scale(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Least squares per output: scale_j = <y_j, f_j> / <f_j, f_j>; f, y [K, N, d] -> [K, d]."""
    f, y = f.double(), y.double()
    num, den = (f * y).sum(1), f.pow(2).sum(1)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(den))


def fit_logit_scale(f: torch.Tensor, y: torch.Tensor, iters: int = 30, ridge: float = 1e-6, tol: float = 1e-7) -> torch.Tensor:
    """Per-class logit scales a minimising the cross-entropy of a * f; f [K, N, C], y [K, N] -> [K, C].

    The problem is convex in a; damped Newton on logits normalised to unit RMS per class,
    with a tiny ridge so that separable or dead classes stay finite.
    """
    f = f.double()
    K, N, C = f.shape
    rms = f.pow(2).mean(1).sqrt()  # [K, C]
    g = torch.where(rms[:, None] > 0, f / rms.clamp_min(1e-300)[:, None], torch.zeros_like(f))
    onehot = torch.nn.functional.one_hot(y, C).double()
    a = torch.zeros(K, C, dtype=torch.float64, device=f.device)
    damping = torch.ones(K, 1, 1, dtype=torch.float64, device=f.device)
    eye = torch.eye(C, dtype=torch.float64, device=f.device)

    def loss_of(a):
        z = g * a[:, None]
        zmax = z.amax(-1, keepdim=True)
        lse = (z - zmax).exp_().sum(-1).log_() + zmax[..., 0]
        return (lse - (z * onehot).sum(-1)).mean(1) + ridge * a.pow(2).sum(1)

    loss = loss_of(a)
    done = torch.zeros(K, dtype=torch.bool, device=f.device)
    for _ in range(iters):
        z = g * a[:, None]
        p = (z - z.amax(-1, keepdim=True)).exp_()
        p /= p.sum(-1, keepdim=True)
        grad = (g * (p - onehot)).mean(1) + 2 * ridge * a
        gp = g * p
        hess = torch.diag_embed((g * gp).mean(1)) - gp.transpose(1, 2) @ gp / N + 2 * ridge * eye
        step = torch.linalg.solve(hess + damping * eye, grad.unsqueeze(-1)).squeeze(-1)
        trial = a - step
        new = loss_of(trial)
        better = (new < loss) & ~done  # a converged network keeps its scales: its result is its own
        a = torch.where(better[:, None], trial, a)
        gain = (loss - new).clamp_min(0)
        loss = torch.where(better, new, loss)
        damping = torch.where(better[:, None, None], damping / 4, damping * 4).clamp(1e-9, 1e9)
        # Converged: the loss no longer falls, and either the steps are full Newton
        # steps or the gradient has vanished (then rounding rejects every step and the damping
        # only grows, as it does at once for a network whose outputs are all zero).
        settled = (damping[:, 0, 0] < 1e-3) | (grad.abs().amax(-1) < 1e-9)
        done |= (gain < tol) & settled
        if bool(done.all()):
            break
    return torch.where(rms > 0, a / rms.clamp_min(1e-300), torch.zeros_like(a))


def refine_for_accuracy(f: torch.Tensor, y: torch.Tensor, a: torch.Tensor, sweeps: int = 4) -> torch.Tensor:
    """Coordinate ascent on training accuracy over per-class scales, from a; f [K, N, C].

    For class j with the other scales fixed, sample n is predicted j exactly when
    a_j * f_nj > m_n (m_n the best other logit), so accuracy is a step function of a_j with
    steps at m_n / f_nj; an exact search over the steps finds its maximum. Each interval
    between steps offers one candidate: the current scale if it lies inside, else the
    interval's midpoint (or, past the outermost step, a point beyond it); among the intervals of
    maximal accuracy the candidate nearest the current scale wins. A network stops after a sweep that
    changed none of its scales: the next sweep would repeat it exactly.
    """
    f = f.double()
    a = a.clone()
    active = torch.arange(f.shape[0], device=f.device)
    for _ in range(sweeps):
        before = a[active]
        after = _accuracy_sweep(f[active], y[active], before)
        a[active] = after
        active = active[(after != before).any(-1)]
        if not active.numel():
            break
    return a


def _accuracy_sweep(f: torch.Tensor, y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """One sweep of refine_for_accuracy over the classes, for every network given."""
    K, N, C = f.shape
    a = a.clone()
    rows = torch.arange(K, device=f.device)[:, None]
    for j in range(C):
        z = f * a[:, None]
        others = z.clone()
        others[..., j] = float("-inf")
        m, o = others.max(-1)  # best other class per sample
        fj = f[..., j]
        gain = (y == j).double() - (o == y).double()  # what winning sample n changes
        pos, neg = fj > 0, fj < 0
        tau = torch.where(fj != 0, m / torch.where(fj != 0, fj, torch.ones_like(fj)), torch.zeros_like(fj))
        tau = torch.where(pos | neg, tau, torch.full_like(tau, float("inf")))
        step = torch.where(pos, gain, torch.where(neg, -gain, torch.zeros_like(gain)))
        order = tau.argsort(-1)
        ts, steps = tau[rows, order], step[rows, order]
        start = (gain * neg).sum(-1, keepdim=True)  # samples won below every threshold
        value = torch.cat([start, start + steps.cumsum(-1)], -1)  # accuracy gain on each interval
        lo = torch.cat([torch.full_like(ts[:, :1], float("-inf")), ts], -1)
        hi = torch.cat([ts, torch.full_like(ts[:, :1], float("inf"))], -1)
        finite_lo, finite_hi = torch.isfinite(lo), torch.isfinite(hi)
        mid = torch.where(finite_lo & finite_hi, (lo + hi) / 2,
                          torch.where(finite_lo, lo.abs() + lo + 1, torch.where(finite_hi, hi - hi.abs() - 1, a[:, j:j + 1])))
        valid = (hi > lo) & ~torch.isnan(mid)
        value = torch.where(valid, value, torch.full_like(value, float("-inf")))
        cur = a[:, j:j + 1]
        inside = (lo < cur) & (cur < hi)
        candidate = torch.where(inside, cur.expand_as(mid), mid)  # keep a_j when its interval wins
        best = value.max(-1, keepdim=True).values
        dist = torch.where(value == best, (candidate - cur).abs(), torch.full_like(mid, float("inf")))
        a[:, j] = candidate[rows[:, 0], dist.argmin(-1)]
    return a


def predict(logits: torch.Tensor, y_train: torch.Tensor, n_classes: int) -> torch.Tensor:
    """argmax over classes; exact ties go to the tied class most frequent in the training split.

    A network whose outputs are all zero (every layer's path cut, biases masked) then predicts
    the majority class, i.e. scores chance, rather than whichever class happens to come first.
    """
    counts = torch.nn.functional.one_hot(y_train, n_classes).sum(-2).to(logits.dtype)  # [K, C]
    tied = logits == logits.amax(-1, keepdim=True)
    return (tied * (counts[:, None] + 1)).argmax(-1)


def score_outputs(task: Task, f_train, y_train, f_test, y_test) -> torch.Tensor:
    """The task metric on the test split after the readout fitted on the training split; [K]."""
    if task.kind == "classification":
        a = refine_for_accuracy(f_train, y_train, fit_logit_scale(f_train, y_train))
        return predict(f_test.double() * a[:, None], y_train, f_train.shape[-1]).eq(y_test).double().mean(1)
    s = fit_regression_scale(f_train, y_train)
    return (f_test.double() * s[:, None] - y_test.double()).pow(2).mean(dim=(1, 2))


def _outputs(x: torch.Tensor, weights, biases) -> torch.Tensor:
    """Forward in chunks over K so that activations stay within _EVAL_BYTES."""
    K, N = x.shape[0], x.shape[1]
    width = max(w.shape[1] for w in weights)
    step = max(1, _EVAL_BYTES // max(1, N * width * 4))
    outs = []
    with torch.no_grad():
        for s in range(0, K, step):
            outs.append(stacked_forward(x[s:s + step], [w[s:s + step] for w in weights], [b[s:s + step] for b in biases]))
    return torch.cat(outs)


def metric_of(task: Task, weights, biases, x_tr, y_tr, x_te, y_te) -> torch.Tensor:
    return score_outputs(task, _outputs(x_tr, weights, biases), y_tr, _outputs(x_te, weights, biases), y_te)


# --- structure of a mask --------------------------------------------------------------------


def reachable(wmasks: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Neurons on some kept path from an input (forward) and to an output (backward).

    wmasks: per layer bool [K, out, in]. Returns per layer of neurons (input first) [K, size].
    """
    K = wmasks[0].shape[0]
    fwd = [torch.ones(K, wmasks[0].shape[2], dtype=torch.bool, device=wmasks[0].device)]
    for m in wmasks:
        fwd.append((m.float() @ fwd[-1].float().unsqueeze(-1)).squeeze(-1) > 0)
    bwd = [torch.ones(K, wmasks[-1].shape[1], dtype=torch.bool, device=wmasks[0].device)]
    for m in reversed(wmasks):
        bwd.insert(0, (bwd[0].float().unsqueeze(1) @ m.float()).squeeze(1) > 0)
    return fwd, bwd


def _count(m: torch.Tensor) -> torch.Tensor:
    """Kept entries per network of a bool [K, ...] mask (count_nonzero: far faster than a bool sum)."""
    return torch.count_nonzero(m.flatten(1), dim=1)


def structure(wmasks: list[torch.Tensor]) -> dict:
    """Density, effective density (weights on an input-to-output path) and collapsed layers; per K."""
    fwd, bwd = reachable(wmasks)
    total = sum(m[0].numel() for m in wmasks)
    kept = sum(_count(m) for m in wmasks)
    effective = sum(_count(m & bwd[l + 1].unsqueeze(-1) & fwd[l].unsqueeze(1))
                    for l, m in enumerate(wmasks))
    per_layer = torch.stack([_count(m) for m in wmasks], 1)  # [K, L]
    return {"density": (kept.double() / total).tolist(),
            "effective_density": (effective.double() / total).tolist(),
            "collapsed_layers": [[l for l in range(per_layer.shape[1]) if row[l] == 0] for row in per_layer.tolist()]}


def overlap(wmasks: list[torch.Tensor], tickets: list[torch.Tensor], neuron_maps: list[list[torch.Tensor]]) -> dict:
    """Recall, precision, F1, per-layer recall and neuron recall of masks against tickets; per K.

    Args:
        wmasks, tickets: per layer bool [K, out, in].
        neuron_maps: per K, per hidden layer, the host indices of the ticket's neurons.
    """
    hit_l = torch.stack([_count(m & t) for m, t in zip(wmasks, tickets)], 1).double()
    tic_l = torch.stack([_count(t) for t in tickets], 1).double()
    kept = sum(_count(m) for m in wmasks).double()
    hit, tic = hit_l.sum(1), tic_l.sum(1)
    recall = hit / tic
    precision = torch.where(kept > 0, hit / kept.clamp_min(1), torch.zeros_like(kept))
    f1 = torch.where(hit > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-300), torch.zeros_like(hit))
    layer_recall = torch.where(tic_l > 0, hit_l / tic_l.clamp_min(1), torch.full_like(tic_l, float("nan")))
    # A hidden ticket neuron counts as found if the mask keeps any weight into or out of it.
    neuron = []
    for k in range(wmasks[0].shape[0]):
        found = total = 0
        for l, idx in enumerate(neuron_maps[k]):
            touched = wmasks[l][k].any(1) | wmasks[l + 1][k].any(0)
            found += int(touched[idx].sum())
            total += idx.numel()
        neuron.append(found / total if total else float("nan"))
    return {"recall": recall.tolist(), "precision": precision.tolist(), "f1": f1.tolist(),
            "layer_recall": layer_recall.tolist(), "neuron_recall": neuron}


# --- judging a batch ------------------------------------------------------------------------


def judge(task: Task, nets: dict[int, PlantedNetwork], data: dict[int, Dataset], entries: list[Entry],
          protocol: Protocol, device: torch.device | str = "cpu", train: bool = True,
          compact: bool = True, sparse: bool = True) -> list[dict]:
    """Score every entry; stacked evaluations and lockstep trainings, batched by host shape.

    With `compact` (the default) each network whose live neurons fit in at most half the host's
    width is judged on those alone (plantbench.compact, where the argument that this is exact
    is written out); compact=False judges every network on the whole host. The two agree within
    float rounding. With `sparse` (the default) the layers that plantbench.sparse's measured
    rule picks (very sparse layers of wide hosts, on the CPU) take sparse products instead of
    dense ones; sparse=False keeps dense products everywhere. Hosts of width 100 or less are
    always judged dense.

    Returns one dict per entry with strong, weak (None when train=False), density,
    bias_density, effective_density, collapsed_layers, recall, precision, f1, layer_recall,
    neuron_recall and judge_seconds (the batch's wall time shared out per entry).
    """
    start = time.perf_counter()
    device = torch.device(device)
    if not entries:
        return []
    depth = len(entries[0].weights)
    seeds = sorted({e.seed for e in entries})
    nets = {s: nets[s].to(device) for s in seeds}
    M = [torch.stack([e.weights[l] for e in entries]).to(device) for l in range(depth)]
    MB = [torch.stack([e.biases[l] if e.biases is not None else torch.ones(M[l].shape[1], dtype=torch.bool)
                       for e in entries]).to(device) for l in range(depth)]
    ds = {s: data[s].to(device) for s in seeds}
    widths = nets[seeds[0]].widths
    live = compaction.live_neurons(M, MB) if compact else []
    batches = compaction.plan(live, widths, len(entries)) if compact else [(None, list(range(len(entries))))]
    strong = torch.empty(len(entries), dtype=torch.float64)
    weak = [None] * len(entries)
    for width, idx in batches:
        W, B, Mi, MBi = _parameters(nets, entries, idx, M, MB, live, width, device)
        splits = [torch.stack([getattr(ds[entries[k].seed], split) for k in idx])
                  for split in ("x_train", "y_train", "x_test", "y_test")]
        groups = sparsity.split(Mi, device) if sparse else [((False,) * depth, list(range(len(idx))))]
        for layout, pos in groups:  # networks whose layers the rule makes sparse are judged apart
            lone = len(pos) == 1
            if lone:  # judged beside a copy of itself (train.LONE_PAIR), so batch mates never matter
                pos = pos * LONE_PAIR
            whole = pos == list(range(len(idx)))  # then the tensors are used as they are: no copy
            params = [[t if whole else t[pos] for t in ts] for ts in (W, B, Mi, MBi)]
            xs = [t if whole else t[pos] for t in splits]
            sub = [idx[p] for p in pos]
            gens = [torch.Generator().manual_seed(int(entries[k].batch_seed)) for k in sub]
            s, w = (sparsity.judge_batch(task, *params, layout, *xs, protocol, gens, train) if any(layout)
                    else _judge_dense(task, *params, *xs, protocol, gens, train))
            if lone:
                sub, s, w = sub[:1], s[:1], w[:1] if w else w
            strong[sub] = s.cpu()
            for k, v in zip(sub, w or []):
                weak[k] = v
        del W, B, Mi, MBi, params

    result = structure(M)
    result.update(overlap(M, [torch.stack([nets[e.seed].ticket_weights[l] for e in entries]) for l in range(depth)],
                          [nets[e.seed].neuron_map for e in entries]))
    n_bias = sum(b.shape[1] for b in MB)
    result["bias_density"] = (sum(b.sum(1) for b in MB).double() / n_bias).tolist()
    result["strong"] = strong.tolist()
    result["weak"] = weak
    seconds = (time.perf_counter() - start) / len(entries)
    keys = list(result)
    return [{**{k: result[k][i] for k in keys}, "judge_seconds": seconds} for i in range(len(entries))]


def _judge_dense(task, W, B, Mi, MBi, x_tr, y_tr, x_te, y_te, protocol, gens, train):
    """Strong scores [K] and weak scores (a list, or None without training) of stacked networks."""
    masked = lambda ps, ms: [p * m.to(p.dtype) for p, m in zip(ps, ms)]  # noqa: E731
    strong = metric_of(task, masked(W, Mi), masked(B, MBi), x_tr, y_tr, x_te, y_te)
    if not train:
        return strong, None
    Wt, Bt = train_stacked(W, B, Mi, MBi, x_tr, y_tr, task.kind, protocol, gens)
    return strong, metric_of(task, masked(Wt, Mi), masked(Bt, MBi), x_tr, y_tr, x_te, y_te).tolist()


def _parameters(nets, entries, idx, M, MB, live, width, device):
    """The stacked host parameters and masks of entries[idx]: whole hosts (width None), or each
    network cut down to its live neurons and padded to `width` (plantbench.compact)."""
    depth = len(M)
    if width is None:
        seeds = sorted({entries[k].seed for k in idx})
        pos = {s: i for i, s in enumerate(seeds)}
        which = torch.tensor([pos[entries[k].seed] for k in idx], device=device)
        stack = lambda ts: torch.stack(ts).to(device)[which]  # noqa: E731  per seed -> per entry
        W = [stack([nets[s].weights[l] for s in seeds]) for l in range(depth)]
        B = [stack([nets[s].biases[l] for s in seeds]) for l in range(depth)]
        return W, B, [m[idx] for m in M], [m[idx] for m in MB]
    parts = [compaction.compact_layers(nets[entries[k].seed].weights, nets[entries[k].seed].biases,
                                       [m[k] for m in M], [m[k] for m in MB], [m[k] for m in live], width)
             for k in idx]
    return tuple([torch.stack([p[j][l] for p in parts]) for l in range(depth)] for j in range(4))


# --- judging with the references ------------------------------------------------------------


def reference_entries(task: Task, net: PlantedNetwork, seed: int) -> list[Entry]:
    """The planted ticket under its own mask, and the dense host, for one seed.

    Their batch seeds depend on task, widths and seed only, so a reference's weak score does not
    depend on the runs it is judged with.
    """
    key = (task.id, list(net.widths), seed)
    ticket = Entry(seed, [m.cpu() for m in net.ticket_weights], [m.cpu() for m in net.ticket_biases],
                   stable_int(*key, "ticket"))
    dense = Entry(seed, [torch.ones_like(w, dtype=torch.bool, device="cpu") for w in net.weights], None,
                  stable_int(*key, "dense"))
    return [ticket, dense]


class Judged(NamedTuple):
    """What judge_with_references returns.

    scores: the judge's scores of each entry, in order.
    references: per seed, the references a record carries (ticket_strong, ticket_weak,
        dense_strong, dense_weak, chance; the weak ones None when not trained).
    reference_scores: per seed, the judge's full scores of the planted ticket's own mask and of
        the dense host ({"planted-ticket": ..., "dense-host": ...}), as for any entry.
    """

    scores: list[dict]
    references: dict[int, dict]
    reference_scores: dict[int, dict[str, dict]]


REFERENCE_MASKS = ("planted-ticket", "dense-host")  # the order reference_entries returns them in


def judge_with_references(task: Task, nets: dict[int, PlantedNetwork], data: dict[int, Dataset],
                          entries: list[Entry], protocol: Protocol, device: torch.device | str = "cpu",
                          train: bool = True, chunk: int | None = None,
                          seeds: list[int] | None = None, cache=None) -> Judged:
    """Judge the entries in one batch with each seed's planted ticket and dense host.

    chunk: at most this many networks (entries and references) per judge call, to bound memory;
    None judges all at once. seeds: whose references to judge; default the entries' seeds.
    cache: a plantbench.refcache.ReferenceCache; a seed whose references it holds is not
    judged again, and the ones judged are stored in it. None computes every reference.
    A network's scores never depend on its batch mates (the judge's rule), so the references
    are the same whichever entries they are judged with.
    """
    seeds = sorted(set(seeds) if seeds is not None else {e.seed for e in entries})
    facts = {s: cache.facts(task.id, nets[s].widths, s, protocol, train, device) for s in seeds} if cache else {}
    stored = {s: cache.get(facts[s]) for s in seeds} if cache else {}
    todo = [s for s in seeds if stored.get(s) is None]
    batch = list(entries)
    for s in todo:
        batch += reference_entries(task, nets[s], s)
    step = chunk or max(1, len(batch))
    scores = []
    for start in range(0, len(batch), step):
        scores += judge(task, nets, data, batch[start:start + step], protocol, device, train=train)
    references, reference_scores = {}, {}
    for k, s in enumerate(todo):
        ticket, dense = scores[len(entries) + 2 * k], scores[len(entries) + 2 * k + 1]
        d = data[s]
        reference_scores[s] = dict(zip(REFERENCE_MASKS, (ticket, dense)))
        references[s] = {"ticket_strong": ticket["strong"], "ticket_weak": ticket["weak"],
                         "dense_strong": dense["strong"], "dense_weak": dense["weak"],
                         "chance": task.chance(d.y_train, d.y_test)}
        if cache:
            cache.put(facts[s], references[s], reference_scores[s])
    for s in seeds:
        if stored.get(s) is not None:
            references[s], reference_scores[s] = stored[s]
    return Judged(scores[:len(entries)], {s: references[s] for s in seeds}, {s: reference_scores[s] for s in seeds})
