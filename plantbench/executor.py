"""Where groups of runs execute: this process, local worker processes (joblib/loky), or Dask.

Every path yields each group's result the moment the group ends, so the coordinator writes
records as they come. The local and the Dask paths are one code path: joblib's Parallel, with
the backend chosen by joblib.parallel_config.

Dask's retry policy (docs/cluster.md):
- A worker that dies while it runs a group (killed, out of memory, preempted) loses only that
  group's unfinished work: the scheduler runs the group again on another worker, up to
  ALLOWED_FAILURES times (distributed.scheduler.allowed-failures). One more death fails the
  sweep with a one-line error; the finished groups are saved and a rerun resumes.
- A group whose task raises is run once more (RETRIES). A pruner's own errors never get
  here: run_group records them as failed runs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence

from .errors import PlantbenchError, UsageError

EXECUTORS = ("local", "dask")

#: Times the Dask scheduler re-runs a group after the worker running it died. This is Dask's
#: default, set explicitly for the local cluster; a --scheduler cluster uses its own setting.
ALLOWED_FAILURES = 3
#: Times a group whose Dask task raised is run again (client.submit(retries=...)).
RETRIES = 1
#: How long the coordinator waits for the first worker of a --scheduler cluster (batch queues).
WAIT_FOR_WORKERS_S = 600
#: How long connecting to a --scheduler address may take.
CONNECT_TIMEOUT_S = 30


def default_jobs() -> int:
    return os.cpu_count() or 1


def execute(groups: Sequence, work: Callable, executor: str = "local", jobs: int | None = None,
            scheduler: str | None = None, inline: Callable | None = None) -> Iterator:
    """Run work(group) for every group and yield (index, result) as groups finish (in any order).

    Args:
        work: a picklable function of one group, run in the workers.
        executor: "local" (joblib's loky processes, or this process when jobs == 1) or "dask".
        jobs: local worker processes, or the workers of the Dask LocalCluster started when no
            scheduler is given; default the machine's cores. Ignored with a scheduler.
        scheduler: a Dask scheduler address (tcp://host:port); without it a LocalCluster starts.
        inline: what to run instead of `work` when everything runs in this process (it may
            report finer progress).

    Close the iterator (or exhaust it) to shut the workers down; a Dask LocalCluster and its
    scratch directory are removed then, also on KeyboardInterrupt.
    """
    if executor not in EXECUTORS:
        raise UsageError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise UsageError("--scheduler needs --executor dask")
    if not groups:
        return
    if executor == "local":
        jobs = default_jobs() if jobs is None else jobs
        if jobs <= 1 or len(groups) <= 1:
            for i, g in enumerate(groups):
                yield i, (inline or work)(g)
            return
        yield from _parallel(groups, work, n_jobs=min(jobs, len(groups)), backend="loky", rounds=2,
                             deaths=_loky_deaths())
        return
    with _dask(scheduler, jobs):
        # Every group goes to the scheduler at once; it balances them over the workers (also
        # over workers that join later). Dask re-runs a group whose worker died, so no second
        # round here.
        yield from _parallel(groups, work, n_jobs=-1, backend=None, rounds=1, deaths=_dask_deaths(),
                             pre_dispatch="all")


def _parallel(groups, work, n_jobs, backend, rounds, deaths, pre_dispatch="2 * n_jobs") -> Iterator:
    """joblib's Parallel over the groups, one group per task, results as they come.

    A worker death (deaths) ends a round; the groups not finished go into the next round.
    """
    from joblib import Parallel, delayed

    pending = list(range(len(groups)))
    for attempt in range(1, rounds + 1):
        done = set()
        try:
            kwargs = {"n_jobs": n_jobs, "return_as": "generator_unordered", "batch_size": 1,
                      "pre_dispatch": pre_dispatch}
            if backend:
                kwargs["backend"] = backend
            parallel = Parallel(**kwargs)
            for i, res in parallel(delayed(_tagged)(work, i, groups[i]) for i in pending):
                done.add(i)
                yield i, res
            return
        except deaths as e:
            pending = [i for i in pending if i not in done]
            if attempt == rounds:
                raise PlantbenchError(f"{_death_message(e)}; {len(pending)} group(s) not finished; the finished "
                                      "ones are saved, so a rerun resumes") from None


def _tagged(work, i, group):
    return i, work(group)


def _loky_deaths() -> tuple:
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    return (TerminatedWorkerError,)


def _dask_deaths() -> tuple:
    from distributed import KilledWorker

    return (KilledWorker,)


def _death_message(e: BaseException) -> str:
    allowed = getattr(e, "allowed_failures", None)
    if allowed is not None:  # Dask's KilledWorker
        return (f"{allowed + 1} Dask workers died running the same group (the scheduler's "
                f"distributed.scheduler.allowed-failures is {allowed})")
    return f"a worker process died twice ({type(e).__name__})"


@contextlib.contextmanager
def _dask(scheduler: str | None, jobs: int | None):
    """A Dask client (on `scheduler`, or on a LocalCluster of `jobs` workers) as joblib's backend.

    All of Dask's scratch files go to a temporary directory that is removed on exit. The
    client, and the LocalCluster with its worker processes, are closed in every case: at the
    end, on an error, on KeyboardInterrupt.
    """
    try:
        import dask
        from dask.distributed import Client, LocalCluster
        from joblib import parallel_config
    except ImportError:
        raise UsageError("--executor dask needs the dask extra: pip install 'plantbench[dask]'") from None

    with contextlib.ExitStack() as stack:  # closes in reverse: client, cluster, config, scratch
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="plantbench-dask-",
                                                                  ignore_cleanup_errors=True))
        stack.enter_context(dask.config.set({"temporary-directory": scratch,
                                             "distributed.scheduler.allowed-failures": ALLOWED_FAILURES}))
        if scheduler:
            try:
                client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
            except (OSError, ValueError, TypeError) as e:
                raise UsageError(f"--scheduler {scheduler}: cannot connect ({e})") from None
            stack.callback(client.close)
        else:
            n = jobs or default_jobs()
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, local_directory=scratch,
                                   dashboard_address=None)
            stack.callback(cluster.close)
            client = Client(cluster, set_as_default=False)
            stack.callback(client.close)
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S if scheduler else 120)
        except (TimeoutError, OSError) as e:
            where = f"the scheduler at {scheduler}" if scheduler else "the local Dask cluster"
            raise PlantbenchError(f"no Dask worker joined {where} ({type(e).__name__}: {e})") from None
        with parallel_config(backend="dask", client=client, retries=RETRIES,
                             wait_for_workers_timeout=WAIT_FOR_WORKERS_S):
            yield client
