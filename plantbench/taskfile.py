"""Tasks from a user's file: `--task FILE.py` or `--task FILE.py:ClassName`, for one invocation.

A task file defines one public concrete subclass of plantbench.Task (or several, one picked with
:ClassName), loaded as `--pruner` loads pruners (plantbench.loading). Its code runs in this
process, which plants its ticket: a task file is for one's own experiments. Its task is never
registered beyond the invocation that names it, its runs record the file's sha256 with a flag,
they never go on the leaderboard, and a sweep under a secret seed key refuses task files before
anything is imported (plantbench.config).
"""

from __future__ import annotations

import contextlib
import numbers
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from . import task as task_module
from .errors import ParameterError, RegistryError, TaskError
from .loading import (
    _import_file,
    defined_subclasses,
    one_line,
    pick_class,
    source_sha256,
    split_ref,
)
from .task import TASKS, Target, Task

KINDS = ("classification", "regression")
#: A file task's or suite's name and version as records must read them (the leaderboard's reader,
#: which plantbench.load_results shares, takes name@version with these).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "must start with a letter or digit and hold letters, digits, '.', '_' and '-', at most 64 characters"
MAX_VERSION = 999_999_999
HINT = "subclass plantbench.task.Task and implement target, function and _noisy"


def is_task_file(ref: object) -> bool:
    """Whether a --task value names a file (FILE.py or FILE.py:ClassName) rather than a registered task."""
    return isinstance(ref, str) and split_ref(ref)[0].endswith(".py")


@dataclass(frozen=True)
class TaskSpec:
    """A loadable reference to a task file's class; small and picklable, so workers load it too."""

    ref: str  # as given
    path: str  # the file, resolved
    class_name: str
    name: str
    source_sha256: str

    def load(self) -> Task:
        """The task (imported once per process); TaskError if the file changed since it was resolved."""
        held = _LOADED.get((self.path, self.class_name))
        if held is not None and held[0] == self.source_sha256:
            return held[1]
        found = resolve_task(f"{self.path}:{self.class_name}")
        if found.source_sha256 != self.source_sha256:
            raise TaskError(f"{self.path} changed since this sweep loaded it (sha256 {self.source_sha256[:12]}, "
                            f"now {found.source_sha256[:12]}); run again")
        return _LOADED[(self.path, self.class_name)][1]


# (resolved path, class name) -> (source sha256, the task instance), per process.
_LOADED: dict[tuple[str, str], tuple[str, Task]] = {}


def resolve_task(ref: str, base: Path | None = None, param: str = "tasks") -> TaskSpec:
    """Load FILE.py or FILE.py:ClassName (relative to `base` if given) and check its task.

    A missing file is a ParameterError naming `param`; everything else a one-line TaskError.
    """
    path_part, class_name = split_ref(ref)
    path = Path(path_part) if base is None or Path(path_part).is_absolute() else base / path_part
    if not path.is_file():
        raise ParameterError(param, "no such file", path_part)
    sha = source_sha256(str(path))
    task_module._importing_task_file = True
    try:
        module = _import_file(path, TaskError)
    finally:
        task_module._importing_task_file = False
    cls = pick_class(path, defined_subclasses(module, Task), class_name, "Task", HINT, TaskError)
    where = f"{path}:{cls.__name__}"
    _check_class(cls, where)
    try:
        task = cls()
    except Exception as e:  # the user's constructor, reported in one line
        raise TaskError(f"{where}() failed: {type(e).__name__}: {one_line(e)}") from None
    _probe(task, where)
    resolved = str(path.resolve())
    _LOADED[(resolved, cls.__name__)] = (sha, task)
    return TaskSpec(ref, resolved, cls.__name__, cls.name, sha)


def _check_class(cls: type, where: str) -> None:
    """The class attributes the Task contract needs, each checked with a message naming it."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise TaskError(f"{where} has name {name!r}; a task name {NAME_RULE}")
    if getattr(cls, "kind", None) not in KINDS:
        raise TaskError(f"{where}: kind must be 'classification' or 'regression', got {getattr(cls, 'kind', None)!r}")
    least = {"version": 0, "n_in": 1, "n_out": 2 if cls.kind == "classification" else 1, "min_depth": 1,
             "max_depth": getattr(cls, "min_depth", 1), "n_samples": 2}
    for attr, low in least.items():
        value = getattr(cls, attr, None)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TaskError(f"{where}: {attr} must be a whole number of at least {low}, got {value!r}")
    if cls.version > MAX_VERSION:
        raise TaskError(f"{where}: version must be at most {MAX_VERSION}, got {cls.version}")
    noise = getattr(cls, "noise", None)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TaskError(f"{where}: noise must be a number, got {noise!r}")
    frac = cls.test_fraction
    if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not 0 < frac < 1:
        raise TaskError(f"{where}: test_fraction must lie in (0, 1), got {frac!r}")


def _probe(task: Task, where: str) -> None:
    """The ticket at the least depth and four samples: shapes that fit the declared sizes."""
    depth = task.min_depth
    try:
        target = task.target(depth)
        x, y = task.sample(4, torch.Generator().manual_seed(0))
    except Exception as e:  # the user's code, reported in one line
        raise TaskError(f"{where}: target({depth}) or sample() failed: {type(e).__name__}: {one_line(e)}") from None
    if not isinstance(target, Target):
        raise TaskError(f"{where}: target({depth}) returned {type(target).__name__}, not a plantbench.task.Target")
    if target.depth != depth or target.sizes[0] != task.n_in or target.sizes[-1] != task.n_out:
        raise TaskError(f"{where}: target({depth}) has {target.depth} layers and sizes {target.sizes}; expected "
                        f"{depth} layers from n_in {task.n_in} to n_out {task.n_out}")
    want = (4,) if task.kind == "classification" else (4, task.n_out)
    if tuple(x.shape) != (4, task.n_in) or tuple(y.shape) != want:
        raise TaskError(f"{where}: sample(4) gave x {tuple(x.shape)} and y {tuple(y.shape)}; expected x (4, "
                        f"{task.n_in}) and y {want}")
    if task.kind == "classification" and (y.dtype != torch.long or not ((y >= 0) & (y < task.n_out)).all()):
        raise TaskError(f"{where}: a classification task's labels are int64 class indices 0..{task.n_out - 1}")


def find_task(ref: str) -> Task:
    """A registered task by name, or a task file's task (loaded for this call, not registered)."""
    if is_task_file(ref):
        return resolve_task(ref, param="task").load()
    try:
        return TASKS.get(ref)
    except RegistryError as e:
        raise ParameterError("task", str(e), ref) from None


def source_of(task: Task) -> str | None:
    """The sha256 of the file a task was loaded from; None for a registered task."""
    return next((sha for sha, t in _LOADED.values() if t is task), None)


# --- registration for one sweep ---------------------------------------------------------------

# name -> the file task registered under it now (in this process).
_ACTIVE: dict[str, TaskSpec] = {}


@contextlib.contextmanager
def registered(specs: Iterable[TaskSpec]) -> Iterator[None]:
    """File tasks registered in TASKS under their names inside the block only.

    A name a registered task holds, or two files that define tasks of one name, are refused.
    """
    with contextlib.ExitStack() as stack:
        for spec in specs:
            stack.enter_context(_register(spec))
        yield


@contextlib.contextmanager
def _register(spec: TaskSpec) -> Iterator[None]:
    held = _ACTIVE.get(spec.name)
    if held is not None:
        if (held.path, held.class_name) != (spec.path, spec.class_name):
            raise TaskError(f"{held.path}:{held.class_name} and {spec.path}:{spec.class_name} both define task "
                            f"{spec.name!r}; rename one")
        yield
        return
    if spec.name in TASKS:
        raise TaskError(f"{spec.path}:{spec.class_name} is named {spec.name!r}, as a registered task; give it "
                        "another name")
    with TASKS.temporarily(spec.name, spec.load()):
        _ACTIVE[spec.name] = spec
        try:
            yield
        finally:
            _ACTIVE.pop(spec.name, None)


def spec_of(name: str) -> TaskSpec | None:
    """The file task registered under `name` now, or None for a task of the package."""
    return _ACTIVE.get(name)
