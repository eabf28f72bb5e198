"""Where groups of runs execute: this process, local worker processes (joblib/loky), or Dask.

Every path yields each group's result the moment the group ends, so the coordinator writes
records as they come. The local and the Dask paths are one code path: joblib's Parallel, with
the backend chosen by joblib.parallel_config.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

from .errors import PlantbenchError, UsageError

EXECUTORS = ("local", "dask")


def default_jobs() -> int:
    return os.cpu_count() or 1


def execute(groups: Sequence, work: Callable, executor: str = "local", jobs: int | None = None,
            scheduler: str | None = None, inline: Callable | None = None) -> Iterator:
    """Run work(group) for every group and yield (index, result) as groups finish (in any order).

    Args:
        work: a picklable function of one group, run in the workers.
        executor: "local" (joblib's loky processes, or this process when jobs == 1) or "dask".
        jobs: local worker processes; default the machine's cores.
        scheduler: a Dask scheduler address (tcp://host:port); without it a LocalCluster starts.
        inline: what to run instead of `work` when everything runs in this process (it may
            report finer progress).
    """
    if executor not in EXECUTORS:
        raise UsageError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if executor == "local":
        jobs = default_jobs() if jobs is None else jobs
        if jobs <= 1 or len(groups) <= 1:
            for i, g in enumerate(groups):
                yield i, (inline or work)(g)
            return
        yield from _parallel(groups, work, contextlib.nullcontext(), n_jobs=min(jobs, len(groups)), backend="loky")
        return
    with _dask(scheduler, jobs) as ctx:
        yield from _parallel(groups, work, ctx, n_jobs=-1, backend=None)


def _parallel(groups, work, ctx, n_jobs, backend) -> Iterator:
    from joblib import Parallel, delayed

    pending = list(range(len(groups)))
    for attempt in (1, 2):
        done = set()
        try:
            with ctx if attempt == 1 else contextlib.nullcontext():
                kwargs = {"n_jobs": n_jobs, "return_as": "generator_unordered"}
                if backend:
                    kwargs["backend"] = backend
                parallel = Parallel(**kwargs)
                for i, res in parallel(delayed(_tagged)(work, i, groups[i]) for i in pending):
                    done.add(i)
                    yield res
            return
        except _worker_death() as e:
            pending = [i for i in pending if i not in done]
            if attempt == 2:
                raise PlantbenchError(f"a worker process died twice ({type(e).__name__}); {len(pending)} groups "
                                      "not run; the finished ones are saved, so a rerun resumes") from None


def _tagged(work, i, group):
    return i, work(group)


def _worker_death():
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    return (TerminatedWorkerError,)


@contextlib.contextmanager
def _dask(scheduler, jobs):
    try:
        from dask.distributed import Client, LocalCluster
        from joblib import parallel_config
    except ImportError:
        raise UsageError("--executor dask needs the dask extra: pip install 'plantbench[dask]'") from None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="plantbench-dask-") as scratch:
        if scheduler:
            client = Client(scheduler)
            cluster = None
        else:
            cluster = LocalCluster(n_workers=jobs or default_jobs(), threads_per_worker=1, processes=True,
                                   local_directory=scratch, dashboard_address=None)
            client = Client(cluster)
        try:
            with parallel_config(backend="dask"):
                yield
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
