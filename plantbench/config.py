"""A sweep's settings as one frozen dataclass: each field carries its help text and its checks.

The command line builds its `run` options from these fields, so a setting exists once, with
one description and one validation, whether it comes from Python or from a flag.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ParameterError, RegistryError
from .executor import EXECUTORS  # noqa: F401  (re-exported for the command line)

DEVICES = ("auto", "cpu", "cuda")
MAX_SEEDS = 1000  # seeds 0..N-1 of a sweep; beyond it a typo, not a plan
MAX_JOBS = 1024
MAX_RUN_TIMEOUT = 7 * 24 * 3600.0


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True)
class SweepConfig:
    """Everything that defines a sweep. Empty `tasks` or `densities` and `seeds=None` take the suite's."""

    pruner: str = field(metadata=_help("A baseline name, FILE.py, or FILE.py:ClassName."))
    pruner_args: tuple[tuple[str, object], ...] = field(
        default=(), metadata=_help("Constructor arguments for the pruner; recorded with the results."))
    suite: str = field(default="paper", metadata=_help(
        "Name of a registered suite, or a suite file FILE.toml (never on the leaderboard)."))
    tasks: tuple[str, ...] = field(default=(), metadata=_help(
        "Run only these tasks: registered names, or task files FILE.py or FILE.py:ClassName (never on the "
        "leaderboard)."))
    densities: tuple[float, ...] = field(
        default=(), metadata=_help("Run only these densities; the ticket's density is always added."))
    seeds: int | None = field(default=None, metadata=_help("Number of seeds (0..N-1) [default: the suite's]."))
    device: str = field(default="auto", metadata=_help("Where to plant, prune and judge; auto picks cuda where there is one."))
    out: str | os.PathLike | None = field(
        default=None, metadata=_help("Results folder [default: results/<pruner name>]."))
    jobs: int | None = field(default=None, metadata=_help("Worker processes [default: CPU cores]."))
    executor: str = field(default="local",
                          metadata=_help("Where groups of runs execute: local processes, or a Dask cluster."))
    scheduler: str | None = field(
        default=None, metadata=_help("Dask scheduler (tcp://host:port); without it the dask executor "
                                     "starts a local cluster."))
    run_timeout: float = field(
        default=3600.0, metadata=_help("Seconds one pruner call may take; a run past it is recorded as failed "
                                       "(its process is killed) and the sweep goes on."))
    reference_cache: bool = field(
        default=True, metadata=_help("Reuse the references (planted ticket, dense host) cached on disk by earlier "
                                     "sweeps ($PLANTBENCH_CACHE/references, else ~/.cache/plantbench/references); "
                                     "off, every sweep recomputes them."))
    seed_key: str | os.PathLike | object | None = field(
        default=None, metadata=_help("A secret key file (at least 32 bytes; - reads it from standard input): "
                                     "seeds derive from it and cannot be re-planted without it. Records keep "
                                     "the seed index and the key's fingerprint."))

    def __post_init__(self):
        # Lists, a dict of arguments, a single name or None are accepted and stored as tuples,
        # which keeps the config hashable and its pruner arguments in one (sorted) order.
        args = self.pruner_args.items() if isinstance(self.pruner_args, Mapping) else self.pruner_args or ()
        args = tuple(args)
        if all(isinstance(a, tuple) and len(a) == 2 for a in args):  # else validate() names the fault
            args = tuple(sorted(args, key=lambda kv: str(kv[0])))
        object.__setattr__(self, "pruner_args", args)
        for name in ("tasks", "densities"):
            value = getattr(self, name)
            one = isinstance(value, (str, numbers.Number))
            object.__setattr__(self, name, (value,) if one else tuple(value or ()))

    @property
    def args(self) -> dict:
        """The pruner's constructor arguments as keywords."""
        return dict(self.pruner_args)

    def validate(self) -> SweepConfig:
        """Check every field without any compute; a bad one raises ParameterError naming it.

        The pruner itself (its file, its class, whether it takes the arguments) is checked
        when the sweep loads it.
        """
        if not isinstance(self.pruner, str) or not self.pruner:
            raise ParameterError("pruner", "expected a baseline name, FILE.py or FILE.py:ClassName",
                                 repr(self.pruner))
        self._check_args()
        self._check_names()
        for d in self.densities:
            if isinstance(d, bool) or not isinstance(d, numbers.Real):
                raise ParameterError("densities", "expected a number", repr(d))
            if not 0 < d <= 1:
                raise ParameterError("densities", "a density must lie in (0, 1]", f"{d:g}")
        _check_count("seeds", self.seeds, MAX_SEEDS)
        _check_count("jobs", self.jobs, MAX_JOBS)
        t = self.run_timeout
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0 < t <= MAX_RUN_TIMEOUT:
            raise ParameterError("run_timeout", f"expected seconds in (0, {MAX_RUN_TIMEOUT:g}]", repr(t))
        self._check_places()
        if not isinstance(self.reference_cache, bool):
            raise ParameterError("reference_cache", "expected True or False", repr(self.reference_cache))
        return self

    def _check_args(self) -> None:
        keys = set()
        for item in self.pruner_args:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise ParameterError("pruner_args", "expected a dict of keyword arguments", repr(item))
            key = item[0]
            if not isinstance(key, str) or not key.isidentifier():
                raise ParameterError("pruner_args", "keys must be Python identifiers", repr(key))
            if key in keys:
                raise ParameterError("pruner_args", "given twice", repr(key))
            keys.add(key)
            try:  # recorded with every run: it must be standard JSON (no NaN or Infinity)
                json.dumps(item[1], allow_nan=False)
            except (TypeError, ValueError):
                raise ParameterError("pruner_args", "values must be numbers, booleans or text (NaN and "
                                     "Infinity are not allowed)", f"{key}={item[1]!r}") from None

    def _check_names(self) -> None:
        from .loading import split_ref
        from .suite import get_suite
        from .suitefile import is_suite_file
        from .task import get_task
        from .taskfile import is_task_file

        files = [("suite", self.suite, is_suite_file)] + [("tasks", t, is_task_file) for t in self.tasks]
        named = [(name, value) for name, value, is_file in files if is_file(value)]
        if named and self.seed_key is not None:  # refused before any file is read, let alone imported
            raise ParameterError("seed_key", f"a secret seed key runs registered tasks and suites only, not the "
                                 f"file {named[0][1]} (file tasks and suites are for one's own experiments)")
        for name, value in named:
            if not os.path.isfile(split_ref(value)[0]):
                raise ParameterError(name, "no such file", value)
        for name, value, lookup in [("suite", self.suite, get_suite)] + [("tasks", t, get_task) for t in self.tasks]:
            if (name, value) in named or (name == "tasks" and is_suite_file(self.suite)):
                continue  # checked when the sweep loads the files (plantbench.suitefile.load_files)
            if not isinstance(value, str):
                raise ParameterError(name, "expected a registered name", repr(value))
            try:
                lookup(value)
            except RegistryError as e:
                raise ParameterError(name, str(e), value) from None

    def _check_places(self) -> None:
        if self.device not in DEVICES:
            raise ParameterError("device", f"expected {', '.join(DEVICES[:-1])} or {DEVICES[-1]}", repr(self.device))
        if self.out is not None and not isinstance(self.out, (str, os.PathLike)):
            raise ParameterError("out", "expected a folder path", repr(self.out))
        if self.executor not in EXECUTORS:
            raise ParameterError("executor", f"expected one of {', '.join(EXECUTORS)}", repr(self.executor))
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise ParameterError("scheduler", "expected an address such as tcp://host:8786", repr(self.scheduler))
        from .seal import SeedKey

        if self.seed_key is not None and not isinstance(self.seed_key, (str, os.PathLike, SeedKey)):
            raise ParameterError("seed_key", "expected a key file, or - for standard input", type(self.seed_key).__name__)
        if self.scheduler and self.executor != "dask":
            raise ParameterError("scheduler", "only the dask executor takes a scheduler", self.scheduler)


def _check_count(name: str, value, most: int) -> None:
    """None (the default) or a whole number from 1 to `most`."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(name, "expected a whole number", repr(value))
    if value < 1:
        raise ParameterError(name, "need at least 1", value)
    if value > most:
        raise ParameterError(name, f"at most {most}", value)

