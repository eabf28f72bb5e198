"""The pruner's own process: a run's pruner call happens in a child, never in the process that judges.

Why a child: a pruner that hangs can only be stopped by killing its process, and a pruner that
kills its process (os._exit, a crash, the out-of-memory killer) must take nothing else with it.
The parent (the coordinator, or a worker running a group) sends each run's problem and gets the
mask back; a run past its time limit has its child killed and replaced, and the sweep goes on.

What the child receives is what a PruneProblem documents and nothing more: the host's parameters
at their planted initialisation, the training split, the density, the task's public facts, the
training protocol, the seed of the pruner's own generator, the device and the pruner's class and
arguments. It never sees the run seed, the planted ticket, the output scale or the test split;
it starts in an empty temporary folder, without plantbench's environment variables
(plantbench.seal), so that neither its folder nor its environment can tell it more.

What comes back is untrusted: a JSON header and the mask's packed bits, read up to a size the
parent knows in advance, never unpickled. The parent checks the mask again at the boundary.

A child outlives no parent: it polls os.getppid() and exits once its parent has gone (and on
Linux, where it was started from a main thread, also asks the kernel for SIGKILL then).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ParameterError, PlantbenchError, PrunerError, RegistryError, UsageError
from .seal import child_env

_HEAD = struct.Struct("<Q")
MAX_HEADER_BYTES = 1 << 20  # a reply's JSON header; a mask's bits are counted from its shapes
MAX_ERROR_CHARS = 2000  # what a failed record keeps of a pruner's error message
START_TIMEOUT_S = 300  # for the child to import torch and plantbench (a loaded machine is slow)
PARENT_POLL_S = 0.5


# --- watching the parent (children and worker processes) --------------------------------------

_watching = False
_own_folder: str | None = None  # a pruner's process: its temporary starting folder, removed as it ends


def watch_parent(interval: float = PARENT_POLL_S) -> None:
    """Exit this process soon after its parent process has gone (idempotent).

    A daemon thread compares os.getppid() with the parent at the first call: a killed or crashed
    coordinator leaves its workers reparented, and they then exit within `interval` seconds.
    """
    global _watching
    if _watching:
        return
    _watching = True
    parent = os.getppid()

    def poll():
        while os.getppid() == parent:
            time.sleep(interval)
        _orphaned()

    threading.Thread(target=poll, name="plantbench-watch-parent", daemon=True).start()


def _orphaned(*_) -> None:
    """The parent has gone: remove this process's own folder (nobody else will), take down what
    a pruner's process started, and exit."""
    if _own_folder is not None:
        shutil.rmtree(_own_folder, ignore_errors=True)
    if os.getpgrp() == os.getpid():  # a pruner's process: take what the pruner started along
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(1)


def _die_with_parent() -> None:
    """Linux: SIGTERM when the parent's thread that started us ends (prctl PR_SET_PDEATHSIG),
    handled by _orphaned, so that a worker killed outright leaves no folder behind; the poll of
    watch_parent covers a pruner that replaces the handler."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        signal.signal(signal.SIGTERM, _orphaned)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # no libc prctl: the poll still covers it
        pass


# --- frames on pipes ------------------------------------------------------------------------


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(_HEAD.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    """n bytes from fd, or None at end of file; TimeoutError past the deadline."""
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None, limit: int) -> bytes | None:
    head = _read_exact(fd, _HEAD.size, deadline)
    if head is None:
        return None
    (n,) = _HEAD.unpack(head)
    if n > limit:
        raise ValueError(f"a frame of {n} bytes, more than the {limit} expected")
    return _read_exact(fd, n, deadline)


# --- the parent's side ------------------------------------------------------------------------


@dataclass
class Outcome:
    """One pruner call: the mask's bits per key (unchecked) with seconds and epochs, or an error."""

    bits: dict[str, np.ndarray] | None = None
    seconds: float = 0.0
    epochs: int = 0
    error: str | None = None


class Sandbox:
    """A child process that runs one pruner's calls one at a time; replaced after a fault."""

    def __init__(self, pruner, args: dict, threads: int):
        self.key = (pruner, json.dumps(args, sort_keys=True, default=repr), threads)
        self.pruner, self.args, self.threads = pruner, dict(args), threads
        self.proc: subprocess.Popen | None = None
        self._batches: bool | None = None
        self._cwd: str | None = None

    def _start(self) -> None:
        to_child, from_parent = os.pipe()[::-1]
        from_child, to_parent = os.pipe()
        main = threading.current_thread() is threading.main_thread()
        env = child_env(dict(os.environ))  # sealed: no plantbench variables, an empty folder to start in
        self._cwd = tempfile.mkdtemp(prefix="plantbench-pruner-")
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "import sys; from plantbench.sandbox import main; main(sys.argv[1:])",
                 str(from_parent), str(to_parent), str(int(main))],
                pass_fds=(from_parent, to_parent), stdin=subprocess.DEVNULL, env=env, cwd=self._cwd,
                start_new_session=True)  # a group of its own: what the pruner starts ends with it
        finally:
            os.close(from_parent)
            os.close(to_parent)
        self._out, self._in = to_child, from_child
        try:
            ready = _read_frame(self._in, time.monotonic() + START_TIMEOUT_S, 64)
        except TimeoutError:
            ready = None
        if ready != b"ready":
            code = _exit_status(self.proc.pid, wait=1.0)
            self.close()
            how = (f"did not start within {START_TIMEOUT_S} s" if code is None
                   else f"ended before it was ready ({'exit code ' + str(code) if code >= 0 else 'signal ' + str(-code)})")
            raise PlantbenchError(f"the pruner's process {how}; check that `{sys.executable} -c 'import plantbench'` "
                                  "works (its error, if any, is printed above)")

    def seek(self, problem: dict, sizes: dict[str, int], timeout: float) -> Outcome:
        """Run the pruner on one problem (see problem_payload); sizes: each mask key's entries."""
        outcomes = self._exchange({"problem": problem}, [sizes], timeout)
        return outcomes if isinstance(outcomes, Outcome) else outcomes[0]

    def seek_group(self, problems: list[dict], sizes: list[dict[str, int]], timeout: float) -> list[Outcome] | Outcome:
        """Run the pruner's prune_group on several problems in one call: one Outcome per problem,
        or a single Outcome with the error when the call failed as a whole."""
        return self._exchange({"problems": problems}, sizes, timeout)

    def batches(self) -> bool:
        """Whether the pruner has its own prune_group (asked of the child once; False on any fault)."""
        if self._batches is None:
            reply = self._ask({"probe": True}, START_TIMEOUT_S)
            self._batches = bool(reply.get("ok")) and reply.get("batched") is True
        return self._batches

    def _ask(self, body: dict, timeout: float) -> dict:
        """Send one request and read its JSON header: the whole reply of a probe or a description,
        and the start of a seek's. A fault is {"ok": False, "error": ...}."""
        try:
            if self.proc is None:
                self._start()
            _write_frame(self._out, pickle.dumps({"pruner": self.pruner, "args": self.args,
                                                  "threads": self.threads, **body}))
            header = _read_frame(self._in, time.monotonic() + timeout, MAX_HEADER_BYTES)
            if header is None:
                return {"ok": False, "error": self._died()}
            reply = json.loads(header)
            if not isinstance(reply, dict):
                raise ValueError("a reply that is not an object")
            return reply
        except BaseException as e:  # noqa: BLE001  _fault re-raises what is not the child's fault
            return {"ok": False, "error": self._fault(e, timeout)}

    def _exchange(self, body: dict, sizes: list[dict[str, int]], timeout: float) -> list[Outcome] | Outcome:
        deadline = time.monotonic() + timeout
        reply = self._ask(body, timeout)
        if not reply.get("ok"):
            return Outcome(error=str(reply.get("error"))[:MAX_ERROR_CHARS])
        try:
            results = reply["results"]
            if not (isinstance(results, list) and len(results) == len(sizes)):
                raise ValueError("a reply for another number of problems")
            return self._masks(results, sizes, deadline)
        except BaseException as e:  # noqa: BLE001  as in _ask
            return Outcome(error=self._fault(e, timeout))

    def _fault(self, e: BaseException, timeout: float) -> str:
        """The run's error for a fault while talking to the child; anything else (Ctrl-C, SIGTERM,
        a child that never started) stops the child and is raised again."""
        if isinstance(e, TimeoutError):
            self.close()
            return f"timeout after {timeout:g} s"
        if isinstance(e, (BrokenPipeError, ConnectionError)):
            return self._died()
        if isinstance(e, (ValueError, KeyError, TypeError, UnicodeDecodeError)):
            self.close()
            return f"the pruner's process sent a malformed reply ({e})"
        self.close()
        raise e

    def _masks(self, results: list, sizes: list[dict[str, int]], deadline: float) -> list[Outcome] | Outcome:
        """Read the replies' mask bits (one frame for all, its size known from the keys)."""
        lengths = []
        for r, known in zip(results, sizes):
            keys = r["keys"]
            if not (isinstance(keys, list) and len(set(keys)) == len(keys) and set(keys) <= known.keys()):
                raise ValueError("unknown mask keys")
            lengths.append([(known[k] + 7) // 8 for k in keys])
        total = sum(map(sum, lengths))
        blob = _read_frame(self._in, deadline, total)
        if blob is None or len(blob) != total:
            return Outcome(error=self._died())
        outcomes, at = [], 0
        for r, known, ns in zip(results, sizes, lengths):
            bits = {}
            for k, n in zip(r["keys"], ns):
                bits[k] = np.unpackbits(np.frombuffer(blob[at:at + n], dtype=np.uint8), count=known[k]).astype(bool)
                at += n
            outcomes.append(Outcome(bits, _number(r.get("seconds"), float), _number(r.get("epochs"), int)))
        return outcomes

    def _died(self) -> str:
        how = "it closed its reply pipe"
        if self.proc is not None:
            status = _exit_status(self.proc.pid, wait=5.0)
            if status is not None and status < 0:
                how = f"killed by {signal.Signals(-status).name}" if -status in signal.valid_signals() \
                    else f"signal {-status}"
            elif status is not None:
                how = f"exit code {status}"
        self.close()
        return f"the pruner's process died ({how}; os._exit, a crash or the out-of-memory killer)"

    def close(self) -> None:
        """Stop the child and whatever it started (its process group), then reap it."""
        if self.proc is None:
            self._drop_cwd()
            return
        proc, self.proc = self.proc, None
        self._drop_cwd()  # first: a parent killed while it stops the child leaves no folder behind
        for fd in (self._out, self._in):
            with contextlib.suppress(OSError):
                os.close(fd)
        # Before the child is reaped its pid, and so its process group's id, cannot be reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def _drop_cwd(self) -> None:
        if self._cwd is not None:
            shutil.rmtree(self._cwd, ignore_errors=True)
            self._cwd = None


def _exit_status(pid: int, wait: float) -> int | None:
    """How the child ended (exit code, or minus the signal), without reaping it; None while it runs."""
    deadline = time.monotonic() + wait
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return None
        if info is not None and info.si_pid:
            return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _number(value, kind):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return kind(value) if ok else kind(0)


_open: dict[tuple, Sandbox] = {}


def sandbox_for(pruner, args: dict, threads: int) -> Sandbox:
    """This process's child for the pruner (kept between groups, so that it starts once)."""
    box = Sandbox(pruner, args, threads)
    if box.key not in _open:
        close_all()  # one pruner child per process at a time
        _open[box.key] = box
    return _open[box.key]


def close_all() -> None:
    while _open:
        _open.popitem()[1].close()


def describe(ref: str, args: dict):
    """(PrunerSpec, resolved constructor arguments) for a pruner reference, found in a pruner's
    process of its own.

    Importing a pruner's file runs its code, and so does building the pruner: neither may happen
    in the process that derives seeds and plants networks, where that code could read them or
    hook what plants. A short-lived sealed child resolves the reference, builds the pruner with
    `args` and reports its name, class and every constructor argument with the defaults filled
    in (loading.resolved_args); this process checks the reply and hashes the source itself.
    Errors are those resolve and instantiate raise, one line each.
    """
    from .loading import PrunerSpec, baselines_dir, check_name, pruner_ref, source_sha256

    path_part, class_part, is_file = pruner_ref(ref)
    if is_file and not Path(path_part).is_file():
        raise ParameterError("pruner", f"no such file {path_part}")
    sent = f"{Path(path_part).resolve()}{':' + class_part if class_part else ''}" if is_file else ref
    box = Sandbox(None, args, 1)
    try:
        reply = box._ask({"describe": sent}, START_TIMEOUT_S)
    finally:
        box.close()
    if not reply.get("ok"):
        _raise_described(reply, ref)
    try:
        name, class_name, resolved = reply["name"], reply["class_name"], reply["args"]
        check_name(name, ref)
        if not (isinstance(class_name, str) and class_name.isidentifier() and isinstance(resolved, dict)):
            raise ValueError("class or arguments of the wrong type")
        if is_file:
            return PrunerSpec(ref, str(Path(path_part).resolve()), class_name, name, source_sha256(path_part)), resolved
        source = Path(str(reply["source"])).resolve()
        if baselines_dir() is None or source.parent != baselines_dir().resolve() or source.suffix != ".py":
            raise ValueError(f"a baseline's source outside the baselines folder: {source}")
        return PrunerSpec(ref, None, class_name, name, source_sha256(str(source))), resolved
    except (KeyError, TypeError, ValueError) as e:
        raise PrunerError(f"{ref}: the pruner's process sent a malformed description ({e})") from None


_RAISED = {"PrunerError": PrunerError, "RegistryError": RegistryError, "UsageError": UsageError}


def _raise_described(reply: dict, ref: str) -> None:
    """Raise the error the child met while describing, as the same one-line error."""
    error = str(reply.get("error"))[:MAX_ERROR_CHARS]
    if "param" in reply:
        raise ParameterError(str(reply["param"]), error, reply.get("value"))
    if reply.get("type") in _RAISED:
        raise _RAISED[reply["type"]](error)
    raise PrunerError(f"{ref}: {error}")


# --- the child's side -------------------------------------------------------------------------


def _torch_state() -> dict:
    return {"dtype": torch.get_default_dtype(), "grad": torch.is_grad_enabled(),
            "deterministic": torch.are_deterministic_algorithms_enabled(), "rng": torch.get_rng_state(),
            "device": torch.get_default_device()}


def _default_device(device) -> None:
    if torch.get_default_device() != device:  # a pruner moved it; cpu is the mode-free default
        torch.set_default_device(None if device == torch.device("cpu") else device)


def _restore(state: dict, threads: int) -> None:
    """Undo a previous call's changes to torch's global state before the next call."""
    torch.set_default_dtype(state["dtype"])
    torch.set_grad_enabled(state["grad"])
    torch.use_deterministic_algorithms(state["deterministic"])
    torch.set_rng_state(state["rng"])
    _default_device(state["device"])
    torch.set_num_threads(threads)


def _call(request: dict) -> tuple[dict, bytes]:
    """Run one request; every fault, SystemExit and KeyboardInterrupt included, is a reply.

    A request holds one problem, a group of problems (for prune_group) or a probe asking
    whether the pruner has its own prune_group."""
    from .loading import instantiate, source_sha256
    from .pruner import Pruner
    from .runner import error_text
    from .seek import problem_from_payload, seek, seek_group

    try:
        if "describe" in request:
            return _describe(request["describe"], request["args"]), b""
        spec = request["pruner"]
        if spec.path is not None and source_sha256(spec.path) != spec.source_sha256:
            return {"ok": False, "error": f"{spec.path} changed during the sweep; restore it and run again"}, b""
        cls = spec.load()
        if request.get("probe"):
            return {"ok": True, "batched": getattr(cls, "prune_group", None) is not Pruner.prune_group}, b""
        pruner = instantiate(cls, request["args"])
        if "problems" in request:
            results = seek_group(pruner, [problem_from_payload(p) for p in request["problems"]])
        else:
            results = [seek(pruner, problem_from_payload(request["problem"]))]
    except BaseException as e:  # noqa: BLE001  a pruner's fault, whatever it raised, is its run's record
        return {"ok": False, "error": error_text(e)[:MAX_ERROR_CHARS]}, b""
    replies, blob = [], []
    for result in results:
        keys = list(result.mask)
        blob += [np.packbits(result.mask[k].numpy().reshape(-1)).tobytes() for k in keys]
        replies.append({"keys": keys, "seconds": result.seconds, "epochs": result.epochs})
    return {"ok": True, "results": replies}, b"".join(blob)


def _describe(ref: str, args: dict) -> dict:
    """The child's side of describe: resolve, build, and report what the parent records."""
    import inspect

    from .loading import instantiate, resolve, resolved_args
    from .pruner import Pruner
    from .runner import error_text

    try:
        spec = resolve(ref)
        cls = spec.load()
        instantiate(cls, args)
        return {"ok": True, "name": spec.name, "class_name": spec.class_name, "args": resolved_args(cls, args),
                "source": spec.path or inspect.getsourcefile(cls),
                "batched": getattr(cls, "prune_group", None) is not Pruner.prune_group}
    except ParameterError as e:
        return {"ok": False, "error": e.reason, "param": e.param, "value": None if e.value is None else str(e.value)}
    except PlantbenchError as e:
        return {"ok": False, "error": str(e), "type": type(e).__name__}
    except BaseException as e:  # noqa: BLE001  whatever the file raised, reported in one line
        return {"ok": False, "error": error_text(e)}


def main(argv: list[str]) -> None:
    global _own_folder
    from_parent, to_parent, main_thread = int(argv[0]), int(argv[1]), argv[2] == "1"
    _own_folder = os.getcwd()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    if main_thread:
        _die_with_parent()
    watch_parent()
    state = _torch_state()
    _write_frame(to_parent, b"ready")
    while True:
        frame = _read_frame(from_parent, None, 1 << 62)
        if frame is None:  # the parent closed the pipe: done
            shutil.rmtree(_own_folder, ignore_errors=True)
            return
        request = pickle.loads(frame)  # from the parent, which trusts itself
        _restore(state, request["threads"])
        reply, blob = _call(request)
        _write_frame(to_parent, json.dumps(reply).encode())
        if reply["ok"] and "results" in reply:
            _write_frame(to_parent, blob)

