"""Find a pruner: by file path, FILE.py:ClassName, or a registered baseline's name, with a pre-flight check."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ParameterError, PrunerError
from .pruner import MultiShot, Pruner, ScorePruner
from .registry import Registry

_ABSTRACT = (Pruner, ScorePruner, MultiShot)
#: A pruner's `name` names its results folder and leaderboard row: letters, digits, '-', '_' and
#: '.', not starting with '.', at most 100 characters.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def check_name(name: object, where: str) -> str:
    """The pruner's name, or PrunerError saying why it cannot name a folder."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise PrunerError(f"{where} has name {name!r}; a pruner name holds letters, digits, '-', '_' and '.', "
                          "does not start with '.' and has at most 100 characters")
    return name


def pruner_classes(module) -> list[type[Pruner]]:
    """The public concrete Pruner subclasses defined in a module (not merely imported into it).

    Classes whose name starts with an underscore are private helpers (an inner scorer for
    MultiShot, say) and are skipped.
    """
    return defined_subclasses(module, Pruner, _ABSTRACT)


def defined_subclasses(module, base: type, skip: tuple[type, ...] = ()) -> list[type]:
    """The public concrete subclasses of `base` a module defines (not merely imports), less `skip`."""
    found = []
    for name, obj in vars(module).items():
        if (inspect.isclass(obj) and issubclass(obj, base) and obj is not base and obj not in skip
                and not name.startswith("_") and obj.__module__ == module.__name__ and not inspect.isabstract(obj)):
            found.append(obj)
    return found


def _register_baselines(module) -> None:
    """Registers the pruners a baselines/ module defines, under their `name`."""
    for cls in pruner_classes(module):
        if not cls.name:
            raise PrunerError(f"{module.__name__}.{cls.__name__} has no `name`")
        BASELINES.register(cls.name, cls)


BASELINES: Registry[type[Pruner]] = Registry("baseline", "plantbench.baselines", on_import=_register_baselines)


@dataclass(frozen=True)
class PrunerSpec:
    """A loadable reference to a pruner class; small and picklable, so workers can load it too."""

    ref: str  # as given on the command line
    path: str | None  # the file, for user files
    class_name: str
    name: str
    source_sha256: str

    def load(self) -> type[Pruner]:
        if self.path is None:
            return BASELINES.get(self.name)
        module = _import_file(Path(self.path))
        cls = getattr(module, self.class_name, None)
        if cls is None:
            raise PrunerError(f"{self.path} no longer defines {self.class_name}")
        return cls


def _import_file(path: Path, error: type[Exception] = PrunerError):
    """Import a user's .py file as a fresh module; its failures become one-line `error`s."""
    module_name = "plantbench_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise error(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(module_name, None)
        raise error(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # the user's import-time failure, reported in one line
        sys.modules.pop(module_name, None)
        raise error(f"{path} failed to import: {type(e).__name__}: {one_line(e)}") from None
    return module


def pruner_ref(ref: str) -> tuple[str, str, bool]:
    """(path or baseline name, class name or "", whether it names a file) of a pruner reference;
    reads nothing but the file system's names."""
    path_part, class_part = split_ref(ref)
    return path_part, class_part, path_part.endswith(".py") or Path(path_part).exists()


def resolve(ref: str) -> PrunerSpec:
    """Resolve a pruner reference: a baseline name, a .py path, or PATH.py:ClassName. Fails before any compute.

    This imports the pruner's file: the sweep calls it in the pruner's own process only
    (plantbench.sandbox.describe), never where seeds are derived or networks planted."""
    path_part, class_part, is_file = pruner_ref(ref)
    if not is_file:
        cls = BASELINES.get(ref)
        check_name(cls.name, f"baseline {cls.__name__}")
        return PrunerSpec(ref, None, cls.__name__, cls.name, source_sha256(inspect.getsourcefile(cls)))
    path = Path(path_part)
    if not path.is_file():
        raise ParameterError("pruner", f"no such file {path_part}")
    module = _import_file(path)
    classes = pruner_classes(module)
    if class_part:
        chosen = [c for c in classes if c.__name__ == class_part]
        if not chosen:
            names = ", ".join(c.__name__ for c in classes) or "none"
            raise PrunerError(f"{path} defines no Pruner subclass {class_part!r} (found: {names})")
        cls = chosen[0]
    elif not classes:
        raise PrunerError(f"{path} defines no Pruner subclass (subclass plantbench.Pruner and implement prune)")
    elif len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise PrunerError(f"{path} defines {len(classes)} Pruner subclasses ({names}); pick one with {path}:ClassName")
    else:
        cls = classes[0]
    if not cls.name:
        raise PrunerError(f"{path}:{cls.__name__} has no `name` (set name = \"my-pruner\" on the class)")
    check_name(cls.name, f"{path}:{cls.__name__}")
    return PrunerSpec(ref, str(path.resolve()), cls.__name__, cls.name, source_sha256(str(path)))


def one_line(e: Exception) -> str:
    """An exception's message on one line (a user's message may span several)."""
    return " ".join(str(e).split())


def split_ref(ref: str, suffix: str = ".py") -> tuple[str, str]:
    """FILE.py:ClassName as (FILE.py, ClassName); FILE.py alone as (FILE.py, "")."""
    if ref.count(":") == 1 and f"{suffix}:" in ref:
        path, _, cls = ref.partition(":")
        return path, cls
    return ref, ""


def pick_class(path: Path, classes: list[type], class_name: str, kind: str, hint: str,
               error: type[Exception]) -> type:
    """The one `kind` subclass a user's file defines, or the one named `class_name`; else a
    one-line `error` naming what was found (`hint`: how to write one)."""
    if class_name:
        chosen = [c for c in classes if c.__name__ == class_name]
        if not chosen:
            names = ", ".join(c.__name__ for c in classes) or "none"
            raise error(f"{path} defines no {kind} subclass {class_name!r} (found: {names})")
        return chosen[0]
    if not classes:
        raise error(f"{path} defines no {kind} subclass ({hint})")
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise error(f"{path} defines {len(classes)} {kind} subclasses ({names}); pick one with {path}:ClassName")
    return classes[0]


# --- the source hash ----------------------------------------------------------------------


def source_sha256(path: str | None) -> str:
    """The recorded `pruner_source_sha256`: what runs when the pruner file at `path` runs.

    Hashes the file with every module it imports from the submission side (source_files). A
    pruner of one file hashes as the sha256 of its bytes, as records always held; with helper
    modules, the sha256 of every file's relative name, length and bytes in the order of the
    names. "" when there is no path or the file cannot be read (the sandbox's re-check then
    fails the run rather than running changed code).
    """
    if not path:
        return ""
    try:
        files = source_files(path)
        if len(files) == 1:
            return hashlib.sha256(files[0][1].read_bytes()).hexdigest()
        h = hashlib.sha256(b"plantbench source files v1\n")
        for name, file in files:
            data = file.read_bytes()
            h.update(f"{name}\n{len(data)}\n".encode() + data + b"\n")
        return h.hexdigest()
    except OSError:
        return ""


def source_files(path: str | Path) -> list[tuple[str, Path]]:
    """The pruner file and every file it imports from the submission side, transitively, as
    (name relative to the pruner's folder, path) sorted by name.

    The submission side is the pruner's folder tree and the repository's baselines package:
    `import helper` and `from pkg.mod import x` resolve against the pruner's folder (with each
    package's __init__.py), relative imports against the importing file's package, and
    `plantbench.baselines.X` or `baselines.X` against the baselines folder. The standard library,
    installed packages and plantbench itself are left out. Imports are found with `ast`: nothing
    is executed. A file that does not parse is hashed for its bytes alone.
    """
    pruner = Path(path).resolve()
    base = pruner.parent
    seen, todo = {pruner}, [pruner]
    while todo:
        current = todo.pop()
        for found in _imported_files(current, base):
            if found not in seen:
                seen.add(found)
                todo.append(found)
    return sorted((_source_name(f, base), f) for f in seen)


def _source_name(file: Path, base: Path) -> str:
    """A file's name in the hash: under the baselines folder `baselines/...` wherever the pruner
    is, else relative to the pruner's folder."""
    baselines = baselines_dir()
    if baselines is not None and file.is_relative_to(baselines.resolve()):
        return "baselines/" + file.relative_to(baselines.resolve()).as_posix()
    return Path(os.path.relpath(file, base)).as_posix()


def _imported_files(file: Path, base: Path) -> list[Path]:
    """The submission-side files one file's import statements name."""
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (SyntaxError, ValueError, OSError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found += _module_files(alias.name.split("."), file, base, 0)
        elif isinstance(node, ast.ImportFrom):
            parts = node.module.split(".") if node.module else []
            found += _module_files(parts, file, base, node.level)
            for alias in node.names:  # `from pkg import mod` imports the submodule pkg/mod.py
                if alias.name != "*":
                    found += _module_files([*parts, alias.name], file, base, node.level)
    return found


def _module_files(parts: list[str], file: Path, base: Path, level: int) -> list[Path]:
    """The files importing module `parts` runs (each package's __init__.py, then the module)."""
    if level:
        root, names = file.parents[level - 1] if level <= len(file.parents) else None, parts
    elif parts[:2] == ["plantbench", "baselines"]:
        root, names = baselines_dir(), parts[2:]
    elif parts[:1] == ["baselines"]:
        root, names = baselines_dir(), parts[1:]
    elif not parts or parts[0] == "plantbench" or parts[0] in sys.stdlib_module_names:
        return []
    else:
        root, names = base, parts
    if root is None:
        return []
    out = [root / "__init__.py"] if not names else []
    for i in range(1, len(names) + 1):
        stem = root.joinpath(*names[:i])
        if (stem / "__init__.py").is_file():
            out.append(stem / "__init__.py")
        elif i == len(names):
            out.append(stem.with_name(stem.name + ".py"))
        elif not stem.is_dir():  # a namespace package has no __init__.py but is a folder
            break
    return [f.resolve() for f in out if f.is_file()]


def baselines_dir() -> Path | None:
    """The folder of the baselines package (plantbench.baselines), found without importing it."""
    spec = importlib.util.find_spec("plantbench.baselines")
    return Path(spec.origin).parent if spec and spec.origin else None


def parse_arg(text: str) -> tuple[str, object]:
    """key=value with the value read as int, float, bool or str; never evaluated."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ParameterError("pruner_args", "expected key=value with a Python identifier as key", repr(text))
    raw = raw.strip()
    low = raw.lower()
    if low in ("true", "false"):
        return key, low == "true"
    for conv in (int, float):
        try:
            return key, conv(raw)
        except ValueError:
            pass
    return key, raw


def resolved_args(cls: type[Pruner], args: dict) -> dict:
    """Every constructor argument the pruner runs with: those given, and the defaults of the
    others, in the signature's order. Records hold these, so a run's hyperparameters are on
    record whether or not the user typed them; each must be JSON that reads back equal."""
    sig = inspect.signature(cls)
    bound = sig.bind(**args)
    bound.apply_defaults()
    out = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        for key, v in (value.items() if kind is inspect.Parameter.VAR_KEYWORD else [(name, value)]):
            if not _recordable(v):
                raise PrunerError(f"{cls.__name__} argument {key!r} is {v!r}; records hold every constructor argument, "
                                  "so each must be JSON: a number, boolean, text, None, or a list or dict of them")
            out[key] = v
    return out


def _recordable(value) -> bool:
    """Whether a record holds the value as it is: standard JSON that reads back equal (a tuple
    would read back as a list)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False)) == value
    except (TypeError, ValueError):
        return False


def instantiate(cls: type[Pruner], args: dict) -> Pruner:
    """Build the pruner, turning a bad keyword into a one-line error."""
    try:
        inspect.signature(cls).bind(**args)
    except TypeError as e:
        raise ParameterError("pruner_args", f"does not fit {cls.__name__}: {e}") from None
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:  # the constructor's own checks on its arguments
        raise PrunerError(f"{cls.__name__} refused its arguments: {e}") from None
