"""A typed registry of named components (tasks, baselines, suites) with lazy discovery."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from .errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind.

    Duplicate names are rejected, an unknown name gets a "did you mean" hint, and
    the modules that register entries are imported only on the first lookup.

    Args:
        kind: what the entries are, used in messages ("task", "baseline", ...).
        package: a package whose modules are imported on first use; each module
            registers its own entries, so a new module plugs in with no edit elsewhere.
        on_import: called with each imported module, for entries found rather than
            registered (baselines are plain user-style files).
    """

    def __init__(self, kind: str, package: str | None = None, on_import: Callable | None = None):
        self.kind = kind
        self._package = package
        self._on_import = on_import
        self._entries: dict[str, T] = {}
        self._discovered = package is None
        self._broken: dict[str, str] = {}  # module -> why it failed to import

    def register(self, name: str, obj: T) -> T:
        if name in self._entries and self._entries[name] is not obj:
            raise RegistryError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        return obj

    @contextmanager
    def temporarily(self, name: str, obj: T):
        """`name` names `obj` inside the block only (a task or suite loaded from a user's file).

        The package's own entries are discovered first, so a name they hold is refused here
        rather than breaking the discovery of the module that registers it. Entering again with
        the same object is allowed and leaves it registered until the outer block ends.
        """
        self._discover()
        if name in self._entries and self._entries[name] is obj:
            yield obj
            return
        self.register(name, obj)
        try:
            yield obj
        finally:
            self._entries.pop(name, None)

    def decorator(self, name: str) -> Callable[[T], T]:
        def wrap(obj: T) -> T:
            return self.register(name, obj)

        return wrap

    def _discover(self) -> None:
        """Import every module of the package once. A module that fails is remembered and
        named in lookup errors; it does not hide the entries of the others."""
        if self._discovered:
            return
        pkg = importlib.import_module(self._package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            try:
                module = importlib.import_module(f"{self._package}.{info.name}")
                if self._on_import is not None:
                    self._on_import(module)
            except Exception as e:  # a broken module is reported where it matters: at lookup
                self._broken[info.name] = f"{type(e).__name__}: {e}"
        self._discovered = True

    def get(self, name: str) -> T:
        self._discover()
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(self._entries)) or "none"
            broken = "".join(f"; module {m} failed to import ({why})" for m, why in sorted(self._broken.items()))
            raise RegistryError(f"unknown {self.kind} {name!r}{hint} (known: {known}){broken}") from None

    def at_version(self, ident: str) -> T | None:
        """The entry that `name@version` names, or None when the name is unknown or registered
        at another version (a record of an older task or suite)."""
        name, _, version = str(ident).partition("@")
        if name not in self:
            return None
        entry = self.get(name)
        return entry if str(getattr(entry, "version", "")) == version else None

    @property
    def broken(self) -> dict[str, str]:
        """Modules that failed to import, with the reason."""
        self._discover()
        return dict(self._broken)

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
