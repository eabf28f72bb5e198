"""Suites from a user's TOML file: `--suite FILE.toml`, for one invocation (format: docs/suites.md).

A suite file sets the tasks (registered names, or task files relative to the TOML's folder),
the host's depth and width, the density grid and whether each ticket's own density joins it,
the seeds and the training protocol. Every field is checked, each fault a one-line TaskError
naming the file and the field. Its name may not be a registered suite's, so its runs never pass
for a registered suite's; they record the file's sha256 with a flag and never go on the
leaderboard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import MAX_SEEDS, SweepConfig
from .errors import ParameterError, RegistryError, TaskError, UsageError
from .loading import one_line
from .suite import SUITES, Suite, get_suite
from .task import TASKS
from .taskfile import (
    MAX_VERSION,
    NAME,
    NAME_RULE,
    TaskSpec,
    is_task_file,
    registered,
    resolve_task,
    spec_of,
)
from .train import LOSS_SCALES, OPTIMIZERS, Protocol

MAX_DEPTH = 64
MAX_WIDTH = 65536  # as `plantbench plant` and `show` allow
MAX_HOST_WEIGHTS = 1 << 28  # 1 GiB of float32 weights

KEYS = ("name", "version", "description", "tasks", "depth", "width", "densities", "add_ticket_density", "seeds",
        "protocol")
REQUIRED = ("name", "tasks", "depth", "width", "seeds")
PROTOCOL_KEYS = tuple(f.name for f in dataclasses.fields(Protocol))


def is_suite_file(ref: object) -> bool:
    """Whether a --suite value names a TOML file rather than a registered suite."""
    return isinstance(ref, str) and ref.endswith(".toml")


@dataclass(frozen=True)
class SuiteFile:
    """A suite read from a TOML file, with the task files it names."""

    path: Path
    suite: Suite
    tasks: tuple[TaskSpec, ...]


def load_suite(path: str | Path) -> SuiteFile:
    """Read, check and build the suite a TOML file defines; every fault a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError("suite", "no such file", str(path))
    raw = path.read_bytes()
    doc = _parse(path, raw)
    where = str(path)
    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        raise TaskError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise TaskError(f"{where}: {missing[0]}: missing (required: {', '.join(REQUIRED)})")
    name = _text(doc["name"], where, "name")
    if not NAME.fullmatch(name):
        raise TaskError(f"{where}: name: {name!r} {NAME_RULE}")
    if name in SUITES:
        raise TaskError(f"{where}: name: {name!r} is a registered suite's name; give the file's suite another name")
    depth = _whole(doc["depth"], where, "depth", 1, MAX_DEPTH)
    width = _whole(doc["width"], where, "width", 1, MAX_WIDTH)
    names, specs = _tasks(doc["tasks"], path, depth, width)
    densities = tuple(_density(d, where) for d in _list(doc.get("densities", []), where, "densities"))
    add = doc.get("add_ticket_density", True)
    if not isinstance(add, bool):
        raise TaskError(f"{where}: add_ticket_density: expected true or false, got {add!r}")
    if not densities and not add:
        raise TaskError(f"{where}: densities: empty while add_ticket_density is false, so there is nothing to run")
    suite = Suite(name, _whole(doc.get("version", 1), where, "version", 0, MAX_VERSION),
                  _text(doc.get("description", ""), where, "description"), names, depth, width, densities,
                  _whole(doc["seeds"], where, "seeds", 1, MAX_SEEDS), _protocol(doc.get("protocol", {}), where),
                  add_ticket_density=add, source_sha256=hashlib.sha256(raw).hexdigest())
    return SuiteFile(path, suite, specs)


def _parse(path: Path, raw: bytes) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser as the tomli package, where installed
        try:
            import tomli as tomllib
        except ImportError:
            raise UsageError(f"{path}: reading a suite file needs Python 3.11 or later (tomllib), or the "
                             "tomli package") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TaskError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise TaskError(f"{path}: not valid TOML: {one_line(e)}") from None


def _tasks(value, path: Path, depth: int, width: int) -> tuple[tuple[str, ...], tuple[TaskSpec, ...]]:
    """The task names (files loaded, relative to the TOML's folder), each checked against the host."""
    where = str(path)
    refs = _list(value, where, "tasks")
    if not refs:
        raise TaskError(f"{where}: tasks: expected at least one task")
    names, specs = [], []
    for ref in refs:
        ref = _text(ref, where, "tasks")
        if is_task_file(ref):
            try:
                spec = resolve_task(ref, base=path.parent)
            except ParameterError as e:
                raise TaskError(f"{where}: tasks: {ref}: no such file (task files are found relative to the "
                                f"suite file's folder)") from e
            specs.append(spec)
            task = spec.load()
        else:
            try:
                task = TASKS.get(ref)
            except RegistryError as e:
                raise TaskError(f"{where}: tasks: {e}") from None
        if task.name in names:
            raise TaskError(f"{where}: tasks: {task.name!r} is named twice")
        names.append(task.name)
        _fits(task, depth, width, where)
    return tuple(names), tuple(specs)


def _fits(task, depth: int, width: int, where: str) -> None:
    """The task's ticket fits the host, and the host fits in memory; errors name depth or width."""
    try:
        task.check_depth(depth)
        task.check_host(depth, width)
    except ParameterError as e:
        raise TaskError(f"{where}: {e}") from None
    sizes = [task.n_in, *[width] * (depth - 1), task.n_out]
    n = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if n > MAX_HOST_WEIGHTS:
        raise TaskError(f"{where}: width {width}: a host of {n} weights for task {task.name!r}; at most "
                        f"{MAX_HOST_WEIGHTS}")


def _protocol(value, where: str) -> Protocol:
    """The [protocol] table over the default Protocol, each key type-checked, then Protocol's own checks."""
    if not isinstance(value, dict):
        raise TaskError(f"{where}: protocol: expected a table ([protocol]), got {type(value).__name__}")
    unknown = sorted(set(value) - set(PROTOCOL_KEYS))
    if unknown:
        raise TaskError(f"{where}: protocol: unknown key {unknown[0]!r} (known: {', '.join(PROTOCOL_KEYS)})")
    kw = {}
    for key, v in value.items():
        field = f"protocol.{key}"
        if key in ("batch_size", "epochs"):
            kw[key] = _whole(v, where, field, 1 if key == "batch_size" else 0, 10**9)
        elif key in ("optimizer", "loss_scale"):
            choices = OPTIMIZERS if key == "optimizer" else LOSS_SCALES
            kw[key] = _text(v, where, field)
            if kw[key] not in choices:
                raise TaskError(f"{where}: {field}: expected one of {', '.join(choices)}, got {kw[key]!r}")
        elif key == "betas":
            pair = _list(v, where, field)
            if len(pair) != 2:
                raise TaskError(f"{where}: {field}: expected two numbers, got {len(pair)}")
            kw[key] = tuple(_number(b, where, field) for b in pair)
        else:
            kw[key] = _number(v, where, field)
    try:
        return Protocol(**kw)
    except UsageError as e:
        raise TaskError(f"{where}: protocol: {e}") from None


def _text(value, where: str, field: str) -> str:
    if not isinstance(value, str):
        raise TaskError(f"{where}: {field}: expected text, got {type(value).__name__} {value!r}")
    return value


def _list(value, where: str, field: str) -> list:
    if not isinstance(value, list):
        raise TaskError(f"{where}: {field}: expected a list ([...]), got {type(value).__name__} {value!r}")
    return value


def _number(value, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TaskError(f"{where}: {field}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _whole(value, where: str, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TaskError(f"{where}: {field}: expected a whole number, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise TaskError(f"{where}: {field}: expected {low}..{high}, got {value}")
    return value


def _density(value, where: str) -> float:
    d = _number(value, where, "densities")
    if not 0 < d <= 1:
        raise TaskError(f"{where}: densities: {d:g} does not lie in (0, 1]")
    return d


# --- one sweep ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepFiles:
    """A sweep's task files and suite file, loaded and checked (load_files)."""

    config: SweepConfig
    suite: SuiteFile | None
    tasks: dict[str, TaskSpec]  # --task value -> its file's task

    @contextlib.contextmanager
    def registered(self) -> Iterator[SweepConfig]:
        """The config, naming its file tasks and suite by their names, registered inside the block only."""
        if self.suite is None and not self.tasks:
            yield self.config
            return
        tasks = tuple(self.tasks[t].name if t in self.tasks else t for t in self.config.tasks)
        with contextlib.ExitStack() as stack:
            stack.enter_context(registered([*(self.suite.tasks if self.suite else ()), *self.tasks.values()]))
            suite = self.config.suite
            if self.suite is not None:
                stack.enter_context(SUITES.temporarily(self.suite.suite.name, self.suite.suite))
                suite = self.suite.suite.name
            yield dataclasses.replace(self.config, suite=suite, tasks=tasks)


def load_files(config: SweepConfig) -> SweepFiles:
    """Load and check the config's task files and suite file, before the sweep writes anything.

    A file task named as a registered task, or two files whose tasks share a name, are refused.
    """
    loaded = load_suite(config.suite) if is_suite_file(config.suite) else None
    specs = {t: resolve_task(t) for t in dict.fromkeys(config.tasks) if is_task_file(t)}
    if loaded is not None:  # --task names may name the suite file's own file tasks
        for t in config.tasks:
            if not is_task_file(t) and t not in {s.name for s in loaded.tasks}:
                try:
                    TASKS.get(t)
                except RegistryError as e:
                    raise ParameterError("tasks", f"{e}, nor a task of {loaded.path}", t) from None
    seen: dict[str, TaskSpec] = {}
    for spec in [*(loaded.tasks if loaded else ()), *specs.values()]:
        other = seen.setdefault(spec.name, spec)
        if (other.path, other.class_name) != (spec.path, spec.class_name):
            raise TaskError(f"{other.path}:{other.class_name} and {spec.path}:{spec.class_name} both define task "
                            f"{spec.name!r}; rename one")
        if spec.name in TASKS:
            raise TaskError(f"{spec.path}:{spec.class_name} is named {spec.name!r}, as a registered task; give "
                            "it another name")
    return SweepFiles(config, loaded, specs)


def check_resume(config: SweepConfig, finished: dict[str, dict], root: Path) -> None:
    """Finished runs of a file task or file suite made from another version of its file stop the
    resume, as a pruner's do (config: as SweepFiles.registered yields it)."""
    suite = get_suite(config.suite)
    for r in finished.values():
        name = str(r.get("task", "")).partition("@")[0]
        spec = spec_of(name)
        if spec is not None and r.get("task_source_sha256") != spec.source_sha256:
            _stale(root, f"task {name!r}", r.get("task_source_sha256"), spec.source_sha256, spec.path)
        if suite.source_sha256 is not None and r.get("suite") == suite.id \
                and r.get("suite_source_sha256") != suite.source_sha256:
            _stale(root, f"suite {suite.id}", r.get("suite_source_sha256"), suite.source_sha256, "the suite file")


def _stale(root: Path, what: str, old: str | None, new: str, where: str) -> None:
    was = f"sha256 {old[:12]}" if isinstance(old, str) else "no file"
    raise TaskError(f"{root} holds finished runs of {what} made from another version of {where} ({was}, now "
                    f"{new[:12]}); restore that file, or use another --out")
