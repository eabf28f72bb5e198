"""Sweeps on Dask: the same records as the local executor, worker deaths, isolation, tidiness, Ctrl-C."""

import contextlib
import io
import logging
import pickle
import textwrap

import numpy as np
import pytest
import torch

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
import psutil  # noqa: E402  (a dependency of distributed)
from click.testing import CliRunner  # noqa: E402

from plantbench import runner  # noqa: E402
from plantbench.cli import cli  # noqa: E402
from plantbench.errors import PlantbenchError  # noqa: E402
from plantbench.executor import execute  # noqa: E402
from plantbench.loading import resolve  # noqa: E402
from plantbench.plant import PlantedNetwork  # noqa: E402
from plantbench.records import ResultStore  # noqa: E402
from plantbench.runner import SweepConfig, plan, sweep  # noqa: E402

TASKS = ["relu", "circle"]  # two groups, one per worker

# Kills the worker process that started its pruner process (its parent), the first time any
# worker calls prune(); the marker file (created atomically) tells the later calls that it has
# already happened. (A pruner that kills its own process fails its own run only: test_hostile_run.)
KILLER = '''
import os
import signal

from plantbench import Mask, Pruner

MARKER = {marker!r}


class KillsItsWorkerOnce(Pruner):
    name = "kills-its-worker-once"

    def prune(self, problem):
        try:
            fd = os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os.kill(os.getppid(), signal.SIGKILL)
        scores = {{n: p.detach().abs() for n, p in problem.model.prunable()}}
        return Mask.top_k(scores, problem.density)
'''


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A 2-worker LocalCluster shared by the tests that pass its address as the scheduler."""
    scratch = str(tmp_path_factory.mktemp("dask-scratch"))
    with dask.config.set({"temporary-directory": scratch}):
        c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, local_directory=scratch,
                                     dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    yield c
    c.close()


def killer(tmp_path, cluster=None):
    """A pruner file that kills its worker once; with the cluster, first wait until both workers
    are up again, so that the two groups start on different workers whatever an earlier kill did."""
    if cluster is not None:
        cluster.wait_for_workers(2, timeout=120)
    path = tmp_path / "killer.py"
    path.write_text(textwrap.dedent(KILLER.format(marker=str(tmp_path / "killed"))))
    return path


def by_id(records):
    return {r["run_id"]: r for r in records}


def masks(out):
    found = {}
    for path in sorted((out / "masks").glob("*.npz")):
        with np.load(path) as npz:
            found.update({(path.name, k): npz[k] for k in npz.files})
    return found


# --- isolation -----------------------------------------------------------------------------


class _Types(pickle.Pickler):
    """Pickles like pickle.dumps and notes the type of every object it meets."""

    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.types = set()

    def reducer_override(self, obj):
        self.types.add(type(obj))
        return NotImplemented


def test_what_travels_to_a_worker_holds_no_ticket():
    groups = plan(SweepConfig("magnitude", suite="quick", tasks=TASKS, seeds=2), resolve("magnitude"), "cpu")
    payload = (runner._worker, groups)  # the task's function and arguments, as Dask ships them
    pickler = _Types(io.BytesIO())
    pickler.dump(payload)
    leaks = {t for t in pickler.types
             if issubclass(t, (PlantedNetwork, torch.Tensor, torch.nn.Module, torch.Generator, np.ndarray))}
    assert not leaks
    data = pickle.dumps(payload)
    assert b"plantbench.plant" not in data and b"ticket" not in data
    assert len(data) < 4000  # names and seeds, not tensors
    assert pickle.loads(data)[1] == groups
    from distributed.protocol import serialize

    header, frames = serialize(groups[0])  # Dask's own serialisation carries no more
    assert sum(len(memoryview(f).cast("B")) for f in frames) < 4000


# --- same records ---------------------------------------------------------------------------


def test_dask_gives_the_records_of_the_local_executor(cluster, tmp_path):
    local = sweep(SweepConfig("magnitude", suite="quick", tasks=TASKS, seeds=1, device="cpu", out=tmp_path / "local", jobs=1))
    remote = sweep(SweepConfig("magnitude", suite="quick", tasks=TASKS, seeds=1, device="cpu", out=tmp_path / "dask",
                               executor="dask", scheduler=cluster.scheduler_address))
    a, b = by_id(local.records), by_id(remote.records)
    assert len(a) == 4 and a.keys() == b.keys()
    assert {r["status"] for r in b.values()} == {"ok"}
    for run, rec in a.items():
        other = b[run]
        assert rec.keys() == other.keys()
        for field in rec.keys() - {"created", "timings", "device"}:
            assert rec[field] == other[field], field  # metrics equal, not merely close
    ma, mb = masks(tmp_path / "local"), masks(tmp_path / "dask")
    assert ma.keys() == mb.keys() and len(ma) > 0
    for key in ma:
        assert ma[key].dtype == mb[key].dtype and np.array_equal(ma[key], mb[key]), key  # bit for bit
    assert b.keys() == by_id(ResultStore(tmp_path / "dask").records()[0]).keys()  # all written, once


# --- faults ---------------------------------------------------------------------------------


def test_a_worker_killed_mid_group_loses_nothing(cluster, tmp_path):
    pruner = killer(tmp_path, cluster)
    result = sweep(SweepConfig(str(pruner), suite="quick", tasks=TASKS, seeds=1, device="cpu", out=tmp_path / "out",
                               executor="dask", scheduler=cluster.scheduler_address))
    assert (tmp_path / "killed").exists()  # a worker did die mid-group
    recs = ResultStore(tmp_path / "out").records()[0]
    assert len(recs) == 4 and len(by_id(recs)) == 4 and {r["status"] for r in recs} == {"ok"}
    assert len(result.records) == 4


def test_a_group_that_kills_too_many_workers_fails_alone_and_a_rerun_completes_it(cluster, tmp_path):
    pruner = killer(tmp_path, cluster)
    scheduler = cluster.scheduler
    allowed, scheduler.allowed_failures = scheduler.allowed_failures, 0  # the first death is one too many
    try:
        with pytest.raises(PlantbenchError, match=r"group \(2 runs\) did not finish: 1 Dask workers died.*"
                                                  r"allowed-failures is 0.*rerun runs the missing ones"):
            sweep(SweepConfig(str(pruner), suite="quick", tasks=TASKS, seeds=1, device="cpu", out=tmp_path / "out",
                              executor="dask", scheduler=cluster.scheduler_address))
    finally:
        scheduler.allowed_failures = allowed
    saved = ResultStore(tmp_path / "out").records()[0]
    assert len(saved) == 2 and len({r["task"] for r in saved}) == 1  # the other group went on and was saved
    again = sweep(SweepConfig(str(pruner), suite="quick", tasks=TASKS, seeds=1, device="cpu", out=tmp_path / "out",
                              executor="dask", scheduler=cluster.scheduler_address))
    assert again.skipped == 2 and len(again.records) == 2
    recs = ResultStore(tmp_path / "out").records()[0]
    assert len(recs) == 4 and len(by_id(recs)) == 4 and {r["status"] for r in recs} == {"ok"}


# --- tidiness -------------------------------------------------------------------------------


@pytest.fixture
def clean_tmp(tmp_path, monkeypatch):
    """An empty working directory and an empty temporary directory (TMPDIR), this process's and the workers'."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)  # recomputed from TMPDIR
    return cwd, tmp


def _tidy(cwd, tmp, wait=60.0):
    """Nothing left in the working directory; nothing of Dask's or ours in the temporary one.

    A pruner's process whose worker was stopped while it was still starting removes its own folder
    once started (it reads the end of its pipe), which on a loaded machine can take a while: its
    folder may stay up to `wait` seconds."""
    import time

    assert list(cwd.iterdir()) == []  # no dask-worker-space, dask-scratch-space, logs
    deadline = time.monotonic() + wait
    while (left := [p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor")]) and \
            all(n.startswith("plantbench-pruner-") for n in left) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []  # torch's own cache aside


def _new_children(before, wait=10.0):
    """Child processes started since `before` and still running after up to `wait` seconds,
    leaving out multiprocessing's resource tracker, which lives as long as this process."""
    import time

    deadline = time.monotonic() + wait
    while True:
        alive = []
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if (p.pid not in before and p.status() != psutil.STATUS_ZOMBIE
                        and "resource_tracker" not in " ".join(p.cmdline())):
                    alive.append(" ".join(p.cmdline()))
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def test_the_cli_on_a_local_cluster_stops_cleanly_on_ctrl_c_and_a_rerun_resumes(tmp_path, clean_tmp, monkeypatch):
    cwd, tmp = clean_tmp
    out = tmp_path / "out"
    args = ["run", "--pruner", "magnitude", "--suite", "quick", "--task", "relu", "--task", "circle", "--seeds", "1",
            "--device", "cpu", "--quiet", "--out", str(out)]
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    save = ResultStore.save

    def save_then_interrupt(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C just after the first group is written, the other still running

    monkeypatch.setattr(ResultStore, "save", save_then_interrupt)
    first = CliRunner().invoke(cli, [*args, "--executor", "dask", "--jobs", "2"])
    assert first.exit_code == 130, first.output
    assert "interrupted; finished runs are saved and a rerun resumes" in first.output
    assert len(ResultStore(out).records()[0]) == 2  # the finished group is kept
    assert _new_children(before) == []  # the cluster's workers are gone
    _tidy(cwd, tmp)

    monkeypatch.setattr(ResultStore, "save", save)
    second = CliRunner().invoke(cli, [*args, "--executor", "local", "--jobs", "1"])  # either executor resumes
    assert second.exit_code == 0, second.output
    assert "resuming: 2 finished runs skipped, 2 to do" in second.output
    recs = ResultStore(out).records()[0]
    assert len(recs) == 4 and len(by_id(recs)) == 4 and {r["status"] for r in recs} == {"ok"}
    assert _new_children(before) == []
    _tidy(cwd, tmp)


def test_an_unreachable_scheduler_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr("plantbench.executor.CONNECT_TIMEOUT_S", 1)
    groups = [1, 2]
    with pytest.raises(PlantbenchError, match="scheduler tcp://127.0.0.1:9: cannot connect"):
        list(execute(groups, abs, "dask", scheduler="tcp://127.0.0.1:9"))


def test_with_a_scheduler_the_workers_resolve_the_device(cluster, tmp_path):
    result = sweep(SweepConfig("magnitude", suite="quick", tasks=["relu"], seeds=1, device="auto", out=tmp_path / "out",
                               executor="dask", scheduler=cluster.scheduler_address))
    assert [r["device"] for r in result.records] == ["cpu", "cpu"]  # what "auto" meant on the worker
    assert {r["status"] for r in result.records} == {"ok"}
