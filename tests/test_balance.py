"""Groups split into seed blocks so that every worker stays busy; the records do not depend on the split."""

import dataclasses
import math

import pytest

from plantbench.config import SweepConfig
from plantbench.loading import resolve
from plantbench.runner import balance, plan, run_group

VARYING = ("created", "timings", "mask_file")  # the clock, and the group's mask file


def _plan(suite, **kw):
    config = SweepConfig("magnitude", suite=suite, **kw)
    return plan(config, resolve("magnitude"))


def test_three_tasks_on_two_workers_become_six_groups_of_whole_seeds():
    groups = _plan("paper")
    assert len(groups) == 3
    split = balance(groups, 2)
    assert len(split) == 6
    assert [sorted({r.seed for r in g.runs}) for g in split[:2]] == [[0, 1, 2], [3, 4]]
    assert sorted(r.run_id for g in split for r in g.runs) == sorted(r.run_id for g in groups for r in g.runs)
    assert all(len({g.task for g in split if r in g.runs}) == 1 for r in split[0].runs)
    assert len(balance(groups, 3)) == 3 and len(balance(groups, 1)) == 3  # already even
    assert len(balance(groups, 4)) == 12  # 4 blocks each, never more blocks than workers
    assert len(balance(_plan("paper", seeds=1), 2)) == 3  # a block holds at least one seed


def _records(groups):
    return {r["run_id"]: r for g in groups for r in run_group(g).records}


def test_the_same_records_whatever_the_split():
    groups = [dataclasses.replace(g, reference_cache=None) for g in _plan("quick", tasks=("circle", "helix"))]
    whole, split = _records(groups), _records(balance(groups, 4))
    assert len(balance(groups, 4)) == 4 and whole.keys() == split.keys() and len(whole) == 8
    for rid, a in whole.items():
        b = split[rid]
        assert a["status"] == b["status"] == "ok"
        for key in a.keys() - set(VARYING):
            if isinstance(a[key], float):
                assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-9), key
            elif key == "references":
                assert a[key] == pytest.approx(b[key], rel=1e-5)
            else:
                assert a[key] == b[key], key
