"""SweepConfig: each field's checks name the field, before any compute."""

import dataclasses
import pickle

import pytest

from plantbench import SweepConfig, UsageError, sweep
from plantbench.errors import ParameterError

BAD = [
    ({"pruner": ""}, "pruner", "pruner '': expected a baseline name"),
    ({"pruner": 3}, "pruner", "pruner 3: expected a baseline name"),
    ({"pruner_args": {"not a key": 1}}, "pruner_args", "pruner_args 'not a key': keys must be Python identifiers"),
    ({"pruner_args": ["rounds=2"]}, "pruner_args", "pruner_args 'rounds=2': expected a dict of keyword arguments"),
    ({"pruner_args": (("a", 1), ("a", 2))}, "pruner_args", "pruner_args 'a': given twice"),
    ({"suite": "papr"}, "suite", "suite papr: unknown suite 'papr'; did you mean 'paper'?"),
    ({"suite": None}, "suite", "suite None: expected a registered name"),
    ({"tasks": ["relu", "nosuch"]}, "tasks", "tasks nosuch: unknown task 'nosuch'"),
    ({"densities": [0.5, 1.5]}, "densities", "densities 1.5: a density must lie in (0, 1]"),
    ({"densities": [0]}, "densities", "densities 0: a density must lie in (0, 1]"),
    ({"densities": ["0.5"]}, "densities", "densities '0.5': expected a number"),
    ({"seeds": 0}, "seeds", "seeds 0: need at least 1"),
    ({"seeds": 1.5}, "seeds", "seeds 1.5: expected a whole number"),
    ({"seeds": True}, "seeds", "seeds True: expected a whole number"),
    ({"seeds": 10**20}, "seeds", f"seeds {10**20}: at most 1000"),
    ({"pruner_args": {"lr": float("nan")}}, "pruner_args", "pruner_args lr=nan: values must be numbers"),
    ({"pruner_args": {"x": object()}}, "pruner_args", "pruner_args x=<object"),
    ({"device": "tpu"}, "device", "device 'tpu': expected auto, cpu or cuda"),
    ({"out": 3}, "out", "out 3: expected a folder path"),
    ({"jobs": -1}, "jobs", "jobs -1: need at least 1"),
    ({"jobs": 5000}, "jobs", "jobs 5000: at most 1024"),
    ({"run_timeout": 0}, "run_timeout", "run_timeout 0: expected seconds in (0, 604800]"),
    ({"run_timeout": float("inf")}, "run_timeout", "run_timeout inf: expected seconds"),
    ({"run_timeout": "10"}, "run_timeout", "run_timeout '10': expected seconds"),
    ({"reference_cache": "yes"}, "reference_cache", "reference_cache 'yes': expected True or False"),
    ({"executor": "slurm"}, "executor", "executor 'slurm': expected one of local, dask"),
    ({"scheduler": "tcp://h:1"}, "scheduler", "scheduler tcp://h:1: only the dask executor takes a scheduler"),
    ({"executor": "dask", "scheduler": 8786}, "scheduler", "scheduler 8786: expected an address"),
    ({"seed_key": b"0123456789abcdef0123456789abcdef"}, "seed_key", "seed_key bytes: expected a key file"),
]


@pytest.mark.parametrize("change,field,message", BAD)
def test_a_bad_field_is_named_in_the_error(change, field, message):
    config = SweepConfig(**{"pruner": "magnitude", **change})
    with pytest.raises(ParameterError) as e:
        config.validate()
    assert isinstance(e.value, UsageError)
    assert e.value.param == field and str(e.value).startswith(message), str(e.value)
    assert "--" not in str(e.value) and "\n" not in str(e.value)


def test_every_field_has_help_and_a_check():
    fields = dataclasses.fields(SweepConfig)
    assert all(f.metadata["help"].strip() for f in fields)
    assert {field for _, field, _ in BAD} == {f.name for f in fields}


def test_a_good_config_validates_and_is_normalised():
    config = SweepConfig("magnitude", {"b": 2, "a": True}, "quick", ["relu"], [0.1, 1], 2, "cpu", "out", 1, "dask")
    assert config.validate() is config
    assert config.pruner_args == (("a", True), ("b", 2)) and config.args == {"a": True, "b": 2}
    assert config.tasks == ("relu",) and config.densities == (0.1, 1)
    assert hash(config) == hash(SweepConfig("magnitude", {"a": True, "b": 2}, "quick", ("relu",), (0.1, 1), 2, "cpu",
                                            "out", 1, "dask"))
    assert SweepConfig("magnitude", tasks="relu", densities=0.5).tasks == ("relu",)
    assert SweepConfig("magnitude", tasks="relu", densities=0.5).densities == (0.5,)
    assert dataclasses.replace(config, seeds=None).validate().seeds is None
    assert SweepConfig("magnitude", None, tasks=None, densities=None) == SweepConfig("magnitude")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seeds = 3


def test_a_bad_config_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ParameterError, match=r"^densities 2: a density must lie in \(0, 1\]$"):
        sweep(SweepConfig("magnitude", suite="quick", densities=[2], out=tmp_path / "out"))
    with pytest.raises(ParameterError, match="^pruner_args: does not fit Magnitude"):
        sweep(SweepConfig("magnitude", {"nope": 1}, suite="quick", out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ParameterError, match=f"^out {blocker}: cannot write there"):
        sweep(SweepConfig("magnitude", suite="quick", out=blocker))


def test_a_parameter_error_survives_pickling_and_renames_its_parameter():
    e = pickle.loads(pickle.dumps(ParameterError("seeds", "need at least 1", 0)))
    assert (e.param, e.reason, e.value, str(e)) == ("seeds", "need at least 1", 0, "seeds 0: need at least 1")
    assert e.naming("--seeds") == "--seeds 0: need at least 1"
    assert ParameterError("scheduler", "cannot connect").naming("--scheduler") == "--scheduler: cannot connect"
