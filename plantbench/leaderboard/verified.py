"""An entry's verification.json: its format, a strict reader, and the state the leaderboard shows.

`plantbench verify` writes the file into an entry's results folder after rerunning the entry's
pruner on secret seeds (plantbench.verify). The leaderboard reads it with the strict JSON
reader, checks every field's type, and shows the entry as verified, failed or not yet.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..jsonsafe import JSONLineError, parse_object
from .files import UnsafeFileError, kind, read_bytes

FILE = "verification.json"
FORMAT = 1
LIMIT = 1 << 20  # bytes; a paper-suite file is about 10 KB
VERDICTS = ("verified", "failed")
STATES = ("verified", "failed", "not yet")
METRICS = ("normalized_weak", "normalized_strong", "recall")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NUM = (int, float)

# field -> (allowed types, what a reader is told it should be)
FIELDS = {
    "format": (int, "the integer 1"), "date": (str, "an ISO date"), "seed_key": (str, "16 hex digits"),
    "pruner": (str, "a pruner name"), "pruner_source_sha256": (str, "64 hex digits"), "suite": (str, "a suite"),
    "seeds": (int, "a positive integer"), "summary": (list, "a list of rows"),
    "verdict": (str, "verified or failed"), "reason": ((str, type(None)), "text or null"),
}
ROW = {"task": (str,), "density": _NUM, "ticket": (bool,), "runs": (int,), "failed": (int,), "ok": (bool,)}
STAT = {"n": (int,), "mean": (*_NUM, type(None)), "sd": (*_NUM, type(None))}


def problems(doc: dict) -> list[str]:
    """What breaks the format of a parsed verification.json, one 'field: why' per problem; [] = ok."""
    out = [f"unknown field {k!r}" for k in sorted(doc) if k not in FIELDS]
    for name, (kinds, what) in FIELDS.items():
        if name not in doc:
            out.append(f"missing field {name!r}")
        elif not _is(doc[name], kinds):
            out.append(f"field {name!r}: expected {what}")
    if out:
        return out
    checks = [("format", doc["format"] == FORMAT), ("seed_key", bool(_HEX16.fullmatch(doc["seed_key"]))),
              ("pruner_source_sha256", bool(_HEX64.fullmatch(doc["pruner_source_sha256"]))),
              ("seeds", doc["seeds"] >= 1), ("verdict", doc["verdict"] in VERDICTS),
              ("reason", (doc["reason"] is None) == (doc["verdict"] == "verified"))]
    out += [f"field {n!r}: expected {FIELDS[n][1]}" + (" (a reason when failed, none when verified)"
                                                       if n == "reason" else "") for n, ok in checks if not ok]
    for i, row in enumerate(doc["summary"]):
        out += [f"field 'summary[{i}]'{p}" for p in _row_problems(row)]
    return out


def _is(value, kinds) -> bool:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def _row_problems(row) -> list[str]:
    if not isinstance(row, dict):
        return [": expected an object"]
    want = {**ROW, **{m: (dict,) for m in METRICS}}
    out = [f": unknown field {k!r}" for k in sorted(row) if k not in want]
    out += [f".{k}: missing or of the wrong type" for k, kinds in want.items() if k not in row or not _is(row[k], kinds)]
    for m in METRICS:
        stat = row.get(m)
        if isinstance(stat, dict):
            if set(stat) != set(STAT) or not all(_is(stat[k], v) for k, v in STAT.items()):
                out.append(f".{m}: expected n, mean and sd (numbers, or null without runs)")
    return out


def read(folder: Path, root: Path | None = None) -> tuple[dict | None, str | None]:
    """(the parsed file, None), (None, None) when there is none, or (None, problem naming the file)."""
    root = Path(root) if root is not None else folder.parent
    rel = (folder.relative_to(root) / FILE).as_posix() if folder != root else FILE
    path = Path(root, rel)
    if kind(root, rel) == "missing":
        return None, None
    try:
        doc = parse_object(read_bytes(root, rel, LIMIT))
    except (UnsafeFileError, JSONLineError) as e:
        return None, f"{path}: {e}"
    found = problems(doc)
    return (None, f"{path}: {found[0]}") if found else (doc, None)


def check_folder(folder: Path, records: list[dict], root: Path | None = None) -> list[str]:
    """Problems with a results folder's verification.json: its format, and that it names the
    records' pruner, suite and source (a file left from another version of the pruner is stale)."""
    doc, problem = read(folder, root)
    if problem or doc is None:
        return [problem] if problem else []
    path = folder / FILE
    out = []
    for name in ("pruner", "suite", "pruner_source_sha256"):
        recorded = sorted({str(r.get(name)) for r in records})
        if recorded and doc[name] not in recorded:
            out.append(f"{path}: field {name!r} is {doc[name][:64]!r}, but the records in {folder} have "
                       f"{recorded[0][:64]!r}")
    return out


def state(folders, sources) -> str:
    """verified, failed or not yet for an entry whose records lie in `folders` ((folder, root)
    pairs) and were made from `sources`; all its folders must agree. A file that breaks the
    format, or names other source than the records (stale), counts as not yet verified."""
    found = []
    for folder, root in sorted(folders, key=str):
        doc, problem = read(Path(folder), root)
        ok = doc is not None and problem is None and doc["pruner_source_sha256"] in sources
        found.append(doc["verdict"] if ok else "not yet")
    if not found or "not yet" in found:
        return "not yet"
    return "verified" if all(v == "verified" for v in found) else "failed"
