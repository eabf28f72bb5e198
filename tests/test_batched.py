"""Groups of problems at once: train_many, Pruner.prune_group and the sweep's group call."""

import json
import textwrap

import numpy as np
import pytest
import torch

from plantbench import Mask, OutputScale, ScoreStack, SweepConfig, UsageError, sweep, train_many
from plantbench.loading import BASELINES
from plantbench.records import unpack_mask
from plantbench.seek import make_problem
from plantbench.suite import get_suite
from plantbench.task import get_task

QUICK = get_suite("quick")


def problems(task="circle", runs=((0, 0.1), (1, 0.1), (0, 0.05))):
    return [make_problem(get_task(task), QUICK.depth, QUICK.widths, s, d, protocol=QUICK.protocol) for s, d in runs]


def random_mask(problem, seed):
    g = torch.Generator().manual_seed(seed)
    return Mask({n: torch.rand(w.shape, generator=g) < 0.5 for n, w in problem.model.prunable()})


def flat(problem):
    return torch.cat([p.detach().reshape(-1) for p in problem.model.parameters()])


def test_train_many_matches_train_per_problem():
    """Mixed shapes (relu and circle hosts) in one call; every problem as if trained alone."""
    alone = problems() + problems("relu", ((0, 0.1),))
    together = problems() + problems("relu", ((0, 0.1),))
    for i, p in enumerate(alone):
        p.train(random_mask(p, i), 1)
    train_many(together, [random_mask(p, i) for i, p in enumerate(together)], 1)
    for a, b in zip(alone, together):
        assert not torch.equal(flat(a), flat(make_problem(get_task(a.task.name), QUICK.depth, QUICK.widths, 0, 0.1)))
        assert torch.equal(flat(b), flat(a))
        assert b.epochs_used == a.epochs_used == 1
        assert torch.equal(b.generator.get_state(), a.generator.get_state())  # the same draws


def test_train_many_result_does_not_depend_on_batch_mates():
    results = []
    for runs in (((0, 0.1), (1, 0.1)), ((1, 0.05), (0, 0.1)), ((1, 0.1), (1, 0.05), (0, 0.1))):
        ps = problems(runs=runs)
        train_many(ps, [random_mask(p, 7) for p in ps], 1)
        results.append(flat(ps[list(runs).index((0, 0.1))]))
    assert all(torch.equal(r, results[0]) for r in results)


def test_train_many_pruned_weights_keep_their_values():
    (p,), (q,) = problems(runs=((0, 0.1),)), problems(runs=((1, 0.1),))
    masks = [random_mask(p, 1), random_mask(q, 2)]
    before = {n: w.detach().clone() for n, w in p.model.prunable()}
    train_many([p, q], masks, 1)
    for n, w in p.model.prunable():
        assert torch.equal(w.detach()[~masks[0][n]], before[n][~masks[0][n]])
        assert not torch.equal(w.detach()[masks[0][n]], before[n][masks[0][n]])


def test_train_many_refuses_bad_arguments():
    ps = problems()
    with pytest.raises(UsageError, match="one mask"):
        train_many(ps, [Mask.ones(ps[0].model)], 1)
    with pytest.raises(UsageError, match="same problem twice"):
        train_many([ps[0], ps[0]], [Mask.ones(ps[0].model)] * 2, 1)


BATCHED = [("imp", {"rounds": 3, "epochs": 1}), ("synflow-multishot", {"rounds": 3, "epochs": 1}),
           ("grasp-multishot", {"rounds": 3, "epochs": 1}), ("imp-fc", {"rate": 0.5, "epochs": 1}),
           ("imp-fc-rewind", {"rate": 0.5, "epochs": 1, "rewind_steps": 10}), ("kd-ticket", {"rounds": 3, "epochs": 1})]


@pytest.mark.parametrize("name,args", BATCHED)
def test_prune_group_masks_match_prune_and_ignore_batch_mates(name, args):
    """prune_group's masks equal prune's, problem by problem, on the quick suite's runs, and a
    problem's mask is the same with other batch mates."""
    cls = BASELINES.get(name)
    runs = [(s, d) for s in range(QUICK.seeds) for d in QUICK.grid("circle")]
    alone = [cls(**args).prune(p) for p in problems(runs=runs)]
    group = cls(**args).prune_group(problems(runs=runs))
    for a, b in zip(alone, group):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = cls(**args).prune_group(problems(runs=[runs[2], runs[0]]))
    assert all(torch.equal(other[0][k], group[2][k]) for k in group[2])
    assert all(torch.equal(other[1][k], group[0][k]) for k in group[0])


ONLY_PRUNE = '''
from plantbench import Mask, Pruner

class OnlyPrune(Pruner):
    name = "only-prune"

    def prune(self, problem):
        problem.train(Mask.ones(problem.model), 1)
        return Mask.top_k({n: p.detach().abs() for n, p in problem.model.prunable()}, problem.density)
'''

GROUP_FAILS = '''
from plantbench import Mask, Pruner

class GroupFails(Pruner):
    name = "group-fails"

    def prune(self, problem):
        if problem.density > 0.101:  # the ticket's density; the other run is at 0.1
            raise RuntimeError("too dense for me")
        return Mask.top_k({n: p.detach().abs() for n, p in problem.model.prunable()}, problem.density)

    def prune_group(self, problems):
        raise RuntimeError("no groups today")
'''


def run_sweep(tmp_path, pruner, args=None):
    config = SweepConfig(pruner, args or {}, suite="quick", tasks=["circle"], seeds=2, device="cpu", jobs=1,
                         out=tmp_path / "out")
    sweep(config)
    return [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]


def test_a_pruner_with_only_prune_runs_through_the_runner(tmp_path):
    path = tmp_path / "only.py"
    path.write_text(textwrap.dedent(ONLY_PRUNE))
    records = run_sweep(tmp_path, str(path))
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert all(r["timings"]["pruner_epochs"] == 1 for r in records)


def test_a_failing_group_call_falls_back_to_one_call_per_run(tmp_path):
    path = tmp_path / "fails.py"
    path.write_text(textwrap.dedent(GROUP_FAILS))
    records = run_sweep(tmp_path, str(path))
    by_density = {}
    for r in records:
        by_density.setdefault(r["status"], []).append(r["density_target"])
    assert all(d < 0.101 for d in by_density["ok"]) and len(by_density["ok"]) == 2
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 2 and all("too dense for me" in r["error"] for r in failed)


def test_imp_through_the_runner_scores_as_prune_group_alone(tmp_path):
    """The sweep's group call gives the masks prune_group gives in this process."""
    records = run_sweep(tmp_path, "imp", {"rounds": 2, "epochs": 1})
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert all(r["timings"]["pruner_epochs"] == 2 for r in records)
    runs = [(r["seed"], r["density"]) for r in records]
    masks = BASELINES.get("imp")(rounds=2, epochs=1).prune_group(problems(runs=runs))
    sizes = [get_task("circle").n_in, *QUICK.widths, get_task("circle").n_out]
    for r, m in zip(records, masks):
        with np.load(tmp_path / "out" / r["mask_file"]) as npz:
            weights, _ = unpack_mask(npz, r["run_id"], sizes)
        assert all(torch.equal(w, m[f"layers.{l}.weight"]) for l, w in enumerate(weights))


SCORES = [("edge-popup", {"epochs": 2}), ("edge-popup-annealed", {"epochs": 2}),
          ("gem-miner", {"epochs": 2, "period": 1})]


@pytest.mark.parametrize("name,args", SCORES)
def test_score_training_group_masks_equal_prune_and_ignore_batch_mates(name, args):
    """Score training in lockstep: the group's masks are prune's, bit for bit, on the quick
    suite's runs and a relu run beside them (another shape, so another stack), and a problem's
    mask is the same whichever problems share its group."""
    cls = BASELINES.get(name)
    runs = [(s, d) for s in range(QUICK.seeds) for d in QUICK.grid("circle")]
    group_problems = problems(runs=runs) + problems("relu", ((0, 0.1),))
    alone = [cls(**args).prune(p) for p in problems(runs=runs) + problems("relu", ((0, 0.1),))]
    group = cls(**args).prune_group(group_problems)
    assert len(group) == len(alone) == 5
    for a, b, p in zip(alone, group, group_problems):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert sum(int(b[n].sum()) for n, _ in p.model.prunable()) == p.budget
    assert not torch.equal(group[0]["layers.0.weight"], group[2]["layers.0.weight"])  # seeds differ
    other = cls(**args).prune_group(problems(runs=[runs[2], runs[0]]))
    assert all(torch.equal(other[0][k], group[2][k]) for k in group[2])
    assert all(torch.equal(other[1][k], group[0][k]) for k in group[0])


@pytest.mark.parametrize("task", ["circle", "relu"])
def test_score_stack_loss_is_the_sum_of_output_scale_losses(task):
    """ScoreStack.loss is OutputScale's readout and the task loss, problem by problem, summed."""
    ps = problems(task, ((0, 0.1), (1, 0.05)))
    stack = ScoreStack(ps)
    x, y = next(stack.batches(16))
    out = stack.forward(x, [torch.ones_like(w) for w in stack.weights])
    n_out = ps[0].task.n_out
    scale = torch.linspace(0.25, 2.0, 2 * n_out).view(2, n_out) if ps[0].task.kind == "classification" else None
    want = 0.0
    for k, p in enumerate(ps):
        readout = OutputScale(p.task.kind, p.task.n_out, "cpu")
        if scale is not None:
            readout.scale = scale[k]
        want = want + p.loss(readout(out[k], y[k]), y[k])
    torch.testing.assert_close(stack.loss(out, y, scale), want)
    assert torch.equal(stack.x[1], ps[1].x) and not torch.equal(stack.weights[0][0], stack.weights[0][1])
