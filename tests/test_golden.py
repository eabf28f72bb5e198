"""Golden results: `plantbench run` on the quick suite reproduces stored records, masks and summary.

The data under tests/data/golden/ was made by tests/data/make_golden.py from the same commands as
below. It pins what a run produces, so that a reorganisation of the code can show it changed
nothing. When results change on purpose (a new readout rule, a new protocol), regenerate it with
`python tests/data/make_golden.py` and say why in the commit.

Only the command line and the files it writes are used here (runs.jsonl, masks/*.npz and the
printed summary), never plantbench's Python API.

What must match, and how closely:
  - run ids, every string, integer and list of integers, and the masks: exactly (bit for bit).
    IMP ranks trained weights, so on other kernels a near tie could in principle rank the other
    way and change one mask bit; that has to be looked at, and the data regenerated if benign.
  - density, bias_density, effective_density, recall, precision, f1, layer_recall, neuron_recall,
    ticket_density and density_target: exactly. They are ratios of counts of mask bits, computed
    in float64 from the masks, so they do not depend on float arithmetic order.
  - strong, weak and the references (the task metric on the test split): within a tolerance.
    They come from float32 forward passes and a float32 Adam epoch, whose last bits depend on
    the kernels (torch version, CPU instruction set, BLAS). Measured on the quick suite's hosts,
    moving every weight by about one float32 rounding step (1e-7 relative) moves an MSE by at most
    7e-6 relative and no accuracy by a single test sample, while a mere change of batch order
    moves the weak MSE of a trainable mask by 4e-3 to 2e-2 relative and its accuracy by 1 to 19
    samples. So an MSE may differ by MSE_REL = 1e-4 relative, over ten times the rounding effect
    and far below a real change; an accuracy counts test samples and may differ by one sample of
    the 1000 (ONE_SAMPLE), for a sample lying on a decision boundary.
  - normalized_strong and normalized_weak: within the tolerance that the two above imply, through
    (metric - chance) / (ticket - chance) (on log values for MSE).
  - the summary printed by the command: identical text, with the results folder replaced by OUT.
    It prints accuracies to 0.001, so a change of one test sample, though within the records'
    tolerance, shows in it. Where only the summary differs, on other kernels, the record check
    above has already said how far the numbers moved; regenerate if that is the only change.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from plantbench.cli import cli

GOLDEN = Path(__file__).parent / "data" / "golden"

# The sweeps pinned: the whole quick suite with a pruner that does not train, and one that does
# (IMP, cut to 2 rounds of 1 epoch on one task and seed to stay within seconds).
RUNS = {
    "magnitude": ["--pruner", "magnitude", "--suite", "quick"],
    "imp": ["--pruner", "imp", "--pruner-arg", "rounds=2", "--pruner-arg", "epochs=1", "--suite", "quick",
            "--task", "circle", "--seeds", "1"],
}
COMMON = ["--device", "cpu", "--jobs", "1", "--quiet"]

# Left out of the stored records: when, where and with what the run was made, and the hash of the
# pruner's source text, which any edit of the file changes (a comment included).
VOLATILE = ("created", "timings", "versions", "plantbench_version", "device", "pruner_source_sha256")
METRIC_FIELDS = ("strong", "weak")  # and every value in "references"
NORMALISED_FIELDS = ("normalized_strong", "normalized_weak")
MSE_REL = 1e-4
ONE_SAMPLE = 1 / 1000  # the quick suite's circle test split has 1000 samples


def run_cli(name: str, out: Path) -> tuple[str, list[dict], dict[str, np.ndarray]]:
    """Run one pinned sweep through the CLI: its summary text, stripped records and masks.

    Threads are set to 1 (as tests/conftest.py does for every test), so that the golden data and
    the test compute in the same order.
    """
    torch.set_num_threads(1)
    result = CliRunner().invoke(cli, ["run", *RUNS[name], *COMMON, "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = result.stdout.replace(str(out), "OUT")
    lines = (out / "runs.jsonl").read_text().splitlines()
    full = [json.loads(line) for line in lines]
    for rec in full:  # each record's mask is in the file it names
        with np.load(out / rec["mask_file"]) as npz:
            assert f"{rec['run_id']}__w0" in npz.files, rec["run_id"]
    records = sorted(({k: v for k, v in r.items() if k not in VOLATILE} for r in full), key=lambda r: r["run_id"])
    masks = {}
    for path in sorted((out / "masks").glob("*.npz")):
        with np.load(path) as npz:
            masks.update({k: npz[k] for k in npz.files})
    return summary, records, masks


def load_golden(name: str) -> tuple[str, list[dict], dict[str, np.ndarray]]:
    folder = GOLDEN / name
    summary = (folder / "summary.txt").read_text()
    records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    with np.load(folder / "masks.npz") as npz:
        masks = {k: npz[k] for k in npz.files}
    return summary, records, masks


def _close(value: float, want: float, tol: float, rel: bool) -> bool:
    if math.isnan(want):
        return math.isnan(value)
    return abs(value - want) <= (tol * abs(want) if rel else tol)


def metric_tolerance(rec: dict) -> tuple[float, bool]:
    """(tolerance, relative?) of a metric value of this record. The 1e-9 keeps a difference of
    exactly one sample (0.501 - 0.5 is 0.0010000000000000009 in floats) within it."""
    return (ONE_SAMPLE + 1e-9, False) if rec["metric"] == "accuracy" else (MSE_REL, True)


def normalised_tolerance(rec: dict, normalised: float) -> float:
    """How far a normalised metric n = (m - chance) / (ticket - chance) may move (absolute) when
    m, the ticket's metric and chance each move within their tolerance: to first order,
    |dn| <= (|dm| + |n| |d ticket| + |1 - n| |d chance|) / |ticket - chance|, with every
    quantity on log values for MSE."""
    ref = rec["references"]
    tol, _ = metric_tolerance(rec)
    spread = ref["ticket_strong"] - ref["chance"] if rec["metric"] == "accuracy" else math.log(
        ref["ticket_strong"] / ref["chance"])
    return tol * (1 + abs(normalised) + abs(1 - normalised)) / abs(spread)


def compare_record(got: dict, want: dict) -> list[str]:
    """Every difference beyond what the module docstring allows, as 'field: got vs want'."""
    diffs = []
    if got.keys() != want.keys():
        return [f"fields: {sorted(got.keys() ^ want.keys())}"]
    tol, rel = metric_tolerance(want)
    for key, value in want.items():
        if key == "references":
            diffs += [f"references.{k}: {got[key][k]} vs {v}" for k, v in value.items()
                      if not _close(got[key][k], v, tol, rel)]
            if got[key].keys() != value.keys():
                diffs.append(f"references: keys {sorted(got[key])} vs {sorted(value)}")
        elif key in METRIC_FIELDS and want["status"] == "ok":
            if not _close(got[key], value, tol, rel):
                diffs.append(f"{key}: {got[key]} vs {value}")
        elif key in NORMALISED_FIELDS and want["status"] == "ok":
            if not _close(got[key], value, normalised_tolerance(want, value), False):
                diffs.append(f"{key}: {got[key]} vs {value}")
        elif json.dumps(got[key], sort_keys=True) != json.dumps(value, sort_keys=True):
            # Exact: JSON writes floats in full (repr), NaN as NaN, and 1 and 1.0 differently.
            diffs.append(f"{key}: {got[key]!r} vs {value!r}")
    return diffs


@pytest.mark.parametrize("name", list(RUNS))
def test_the_cli_reproduces_the_golden_quick_sweep(name, tmp_path):
    want_summary, want_records, want_masks = load_golden(name)
    summary, records, masks = run_cli(name, tmp_path / "out")

    assert [r["run_id"] for r in records] == [r["run_id"] for r in want_records]
    assert {r["status"] for r in records} == {"ok"}
    for got, want in zip(records, want_records):
        diffs = compare_record(got, want)
        assert not diffs, f"run {want['run_id']} ({want['task']} seed {want['seed']}): " + "; ".join(diffs)

    assert masks.keys() == want_masks.keys() and masks
    for key, bits in want_masks.items():
        assert masks[key].dtype == bits.dtype and np.array_equal(masks[key], bits), key  # bit for bit

    assert summary == want_summary
