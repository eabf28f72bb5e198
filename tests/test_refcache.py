"""The reference cache: computed once per task, host and seed, reused across pruners, never trusted blindly."""

import json

import pytest

from plantbench import judge as judge_module
from plantbench.config import SweepConfig
from plantbench.errors import ParameterError
from plantbench.judge import judge_with_references
from plantbench.plant import plant_task
from plantbench.refcache import ReferenceCache, default_folder
from plantbench.runner import sweep
from plantbench.suite import get_suite
from plantbench.task import get_task


@pytest.fixture
def counted(monkeypatch):
    """How many seeds' references were judged (in this process)."""
    calls = []
    real = judge_module.reference_entries

    def counting(task, net, seed):
        calls.append((task.id, seed))
        return real(task, net, seed)

    monkeypatch.setattr(judge_module, "reference_entries", counting)
    return calls


def _sweep(tmp_path, pruner, **kw):
    config = SweepConfig(pruner, suite="quick", tasks=("circle", "relu"), jobs=1, out=tmp_path / pruner, **kw)
    return {r["run_id"]: r for r in sweep(config).records}


def test_a_second_pruners_sweep_reuses_the_references_byte_for_byte(tmp_path, counted):
    first = _sweep(tmp_path, "magnitude")
    assert len(counted) == 4  # 2 tasks x 2 seeds
    assert len(list(default_folder().glob("*.json"))) == 4
    second = _sweep(tmp_path, "random")
    assert len(counted) == 4  # nothing judged again
    refs = lambda recs: {(r["task"], r["seed"]): json.dumps(r["references"]) for r in recs.values()}  # noqa: E731
    assert refs(first) == refs(second)
    _sweep(tmp_path, "snip", reference_cache=False)
    assert len(counted) == 8


def test_off_the_cache_is_neither_read_nor_written(tmp_path, counted):
    _sweep(tmp_path, "magnitude", reference_cache=False)
    assert len(counted) == 4 and not default_folder().exists()
    with pytest.raises(ParameterError, match="reference_cache"):
        SweepConfig("magnitude", reference_cache="yes").validate()


def _judged(cache):
    suite = get_suite("quick")
    task = get_task("helix")
    nets = {0: plant_task(task, suite.depth, suite.widths, 0)}
    return judge_with_references(task, nets, {0: task.dataset(0)}, [], suite.protocol, seeds=[0], cache=cache)


@pytest.mark.parametrize("spoil", [
    lambda text: text[: len(text) // 2],  # truncated
    lambda text: text.replace('"ticket_strong": ', '"ticket_strong": NaN, "x": '),  # not standard JSON
    lambda text: text.replace('"seed": 0', '"seed": 1'),  # another seed's facts
    lambda text: text.replace('"dense_weak": ', '"dense_weak": "0.1", "y": '),  # a score that is not a number
    lambda text: "[]",
])
def test_a_spoilt_cache_file_is_recomputed_and_replaced(tmp_path, counted, spoil):
    cache = ReferenceCache(tmp_path / "refs")
    fresh = _judged(cache)
    (path,) = (tmp_path / "refs").glob("*.json")
    good = path.read_text()
    path.write_text(spoil(good))
    again = _judged(cache)
    assert len(counted) == 2 and cache.hits == 0
    assert again.references == fresh.references
    assert json.loads(path.read_text())["references"] == json.loads(good)["references"]  # replaced
    assert _judged(cache).references == fresh.references and cache.hits == 1 and len(counted) == 2


def test_the_key_follows_every_fact(tmp_path):
    cache = ReferenceCache(tmp_path)
    suite = get_suite("quick")
    base = cache.facts("helix@1", [32, 32], 0, suite.protocol, True, "cpu")
    variants = [cache.facts("relu@1", [32, 32], 0, suite.protocol, True, "cpu"),
                cache.facts("helix@1", [32, 33], 0, suite.protocol, True, "cpu"),
                cache.facts("helix@1", [32, 32], 1, suite.protocol, True, "cpu"),
                cache.facts("helix@1", [32, 32], 0, get_suite("paper").protocol, True, "cpu"),
                cache.facts("helix@1", [32, 32], 0, suite.protocol, False, "cpu")]
    assert len({cache.path(f) for f in [base, *variants]}) == 6
    assert base["source_sha256"] and base["torch"] and base["plantbench"]
