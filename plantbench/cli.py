"""The command line: a thin click layer over the Python API; every PlantbenchError becomes one line."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from ._version import __version__
from .config import DEVICES, EXECUTORS, SweepConfig
from .errors import ParameterError, PlantbenchError, UsageError
from .paths import LEADERBOARD_DIR, PLOTS_DIR, REFERENCES_DIR, RESULTS_DIR


class _Command(click.Command):
    """A library error about a parameter names the flag that set it: --density, not densities."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ParameterError as e:
            raise UsageError(e.naming(self.flag(e.param))) from None

    def flag(self, param: str) -> str:
        """The flag (or argument) whose value lands in the parameter called `param`."""
        for p in self.params:
            if p.name == param:
                return p.opts[0] if isinstance(p, click.Option) else p.human_readable_name
        return param


class _Group(click.Group):
    """Turns click's usage errors and every PlantbenchError into one line and an exit code."""

    def main(self, args=None, prog_name=None, **extra):
        extra["standalone_mode"] = False
        try:
            rv = super().main(args=args, prog_name=prog_name, **extra)
        except click.exceptions.Abort as e:
            if isinstance(e.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
                click.echo("interrupted; finished runs are saved and a rerun resumes", err=True)
            else:
                click.echo("aborted", err=True)
            sys.exit(130)
        except click.ClickException as e:
            if type(e).__name__.startswith("NoArgsIsHelp"):  # a bare group: show its help
                click.echo(e.ctx.get_help() if getattr(e, "ctx", None) else e.format_message())
                sys.exit(0)
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(2)
        except PlantbenchError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; finished runs are saved and a rerun resumes", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    command_class = _Command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plantbench")
def cli():
    """plantbench: plant a known sparse ticket in a random network, then see which pruner finds it."""


@cli.command("tasks")
@click.option("--width", default=100, show_default=True, help="Host width for the ticket density column.")
@click.option("--depth", default=4, show_default=True, help="Weight layers for the ticket columns.")
def tasks_cmd(width, depth):
    """List the registered tasks."""
    from .suite import ticket_density
    from .task import TASKS

    rows = []
    for name in TASKS.names():
        t = TASKS.get(name)
        d = max(depth, t.min_depth)
        target = t.target(d)
        rows.append([t.id, t.kind, f"{t.n_in}->{t.n_out}", str(t.min_width(d)), str(t.min_depth),
                     str(target.n_weights), f"{ticket_density(name, d, [width] * (d - 1)):.4g}", t.description])
    _table(["task", "kind", "in->out", "min width", "min depth", f"ticket weights (depth {depth})",
            f"density (width {width})", "description"], rows)
    click.echo("Depth counts weight layers (nn.Linear modules): the paper's depth 5 is depth 4 here.")


@cli.command("baselines")
def baselines_cmd():
    """List the registered baseline pruners."""
    import inspect

    from .loading import BASELINES

    rows = []
    for name in BASELINES.names():
        cls = BASELINES.get(name)
        doc = (inspect.getmodule(cls).__doc__ or cls.__doc__ or "").strip().splitlines()
        rows.append([name, f"{Path(inspect.getsourcefile(cls)).name}:{cls.__name__}", doc[0] if doc else ""])
    _table(["name", "file", "description"], rows)


@cli.command("suites")
@click.argument("files", nargs=-1, metavar="[FILE.toml]...")
def suites_cmd(files):
    """List the registered suites, or check and list the suites of FILE.toml files."""
    from .suite import SUITES
    from .suitefile import load_suite

    suites = [load_suite(f).suite for f in files] if files else [SUITES.get(n) for n in SUITES.names()]
    rows = []
    for s in suites:
        grid = [f"{d:g}" for d in s.densities] + (["ticket"] if s.add_ticket_density else [])
        rows.append([s.id, ",".join(s.tasks), str(s.depth), str(s.width), ",".join(grid),
                     str(s.seeds), str(s.protocol.epochs), s.description])
    _table(["suite", "tasks", "depth", "width", "densities", "seeds", "epochs", "description"], rows)


def _writable(path: str, flag: str) -> Path:
    from .fileio import check_writable

    try:
        return check_writable(path)
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write there ({e.strerror or e})") from None


SHOW_FORMATS = ("", ".png", ".svg", ".pdf")  # no suffix: .png
MAX_WIDTH = 65536  # hidden width of a host that `plant` and `show` build
MAX_HOST_WEIGHTS = 1 << 28  # 1 GiB of float32 weights


def _host(task: str, depth: int, width: int):
    """The task (registered, or from a task file), checked against a host this machine can hold
    (ParameterError names the flag)."""
    from .taskfile import find_task

    if not 1 <= width <= MAX_WIDTH:
        raise ParameterError("width", f"expected 1..{MAX_WIDTH}", width)
    t = find_task(task)
    t.check_host(depth, width)
    sizes = [t.n_in, *[width] * (depth - 1), t.n_out]
    n = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if n > MAX_HOST_WEIGHTS:
        raise ParameterError("width", f"a host of {n} weights; at most {MAX_HOST_WEIGHTS} (lower --width or --depth)",
                             width)
    return t


def _memory_guard():
    """Running out of memory is a one-line error, not a traceback."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except (MemoryError, torch.OutOfMemoryError) as e:
            raise UsageError(f"out of memory ({type(e).__name__}); lower --width or --depth") from None
    return guard()


@cli.command("plant")
@click.option("--task", "task", required=True,
              help="Task name (see `plantbench tasks`), or a task file FILE.py or FILE.py:ClassName.")
@click.option("--width", default=100, show_default=True, type=int, help="Hidden width of the host.")
@click.option("--depth", default=4, show_default=True, type=int, help="Weight layers of the host.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed for host and data.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(DEVICES))
@click.option("--out", default="net.npz", show_default=True, help="Where to write the .npz.")
def plant_cmd(task, width, depth, seed, device, out):
    """Plant a task's ticket in a random host and write it, with its data, to an .npz."""
    from .export import export_npz
    from .plant import plant_task
    from .runner import resolve_device
    from .taskfile import source_of

    task = _host(task, depth, width)  # before anything is written
    dev = resolve_device(device)
    path = _writable(out, "--out")
    with _memory_guard():
        net = plant_task(task, depth, width, seed, device=dev)
        if source_of(task) is not None:  # the .npz says its task came from a file, as records do
            net.meta.update(task_from_file=True, task_source_sha256=source_of(task))
        _write(lambda: export_npz(net, task.dataset(seed), path), path)
    scale = ", ".join(f"{c:.3g}" for c in net.output_scale.tolist())
    click.echo(f"planted {task.id}: ticket of {net.ticket_size} weights (density {net.ticket_density:.4g}) "
               f"in a {'-'.join(map(str, net.sizes))} host on {dev}; output scale c = [{scale}]")
    click.echo(f"wrote {path}")


@cli.command("show")
@click.argument("task", metavar="TASK")
@click.option("--width", default=100, show_default=True, type=int)
@click.option("--depth", default=4, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--out", default=None, help="Image path (.png or .svg); default show-TASK.png.")
def show_cmd(task, width, depth, seed, out):
    """Draw a task's data, its planted ticket's function and the ticket as a graph. TASK is a
    registered task's name, or a task file FILE.py or FILE.py:ClassName."""
    from .show import render

    task = _host(task, depth, width)  # before anything is written
    if out is not None and Path(out).suffix.lower() not in SHOW_FORMATS:
        raise UsageError(f"--out {out}: expected a {', '.join(SHOW_FORMATS[1:])} file")
    path = _writable(out or f"show-{task.name}.png", "--out")
    from .fileio import file_mode

    with _memory_guard():
        written = _write(lambda: render(task, depth, width, seed, path), path)
    written.chmod(file_mode())  # written through a temporary file, which is private (0600)
    click.echo(f"wrote {written}")


def _write(write, path):
    """write() with a file system's refusal (full disk, no permission) as a one-line error."""
    try:
        return write()
    except OSError as e:
        raise UsageError(f"--out {path}: cannot write there ({e.strerror or e})") from None


# How each SweepConfig field is spelled on the command line; its help text is the field's own.
SWEEP_FLAGS = {
    "pruner": ("--pruner", {"required": True}),
    "pruner_args": ("--pruner-arg", {"multiple": True, "metavar": "KEY=VALUE"}),
    "suite": ("--suite", {}),
    "tasks": ("--task", {"multiple": True}),
    "densities": ("--density", {"multiple": True, "type": float}),
    "seeds": ("--seeds", {"type": int}),
    "device": ("--device", {"type": click.Choice(DEVICES)}),
    "out": ("--out", {}),
    "jobs": ("--jobs", {"type": int}),
    "executor": ("--executor", {"type": click.Choice(EXECUTORS)}),
    "scheduler": ("--scheduler", {"metavar": "ADDRESS"}),
    "run_timeout": ("--run-timeout", {"type": float, "metavar": "SECONDS"}),
    "reference_cache": ("--reference-cache/--no-reference-cache", {}),
    "seed_key": ("--seed-key", {"metavar": "FILE"}),
}


def _sweep_options(command):
    """One option per SweepConfig field, in field order, with the field's default and help."""
    fields = dataclasses.fields(SweepConfig)
    if {f.name for f in fields} != SWEEP_FLAGS.keys():
        raise RuntimeError(f"SWEEP_FLAGS and SweepConfig differ: {sorted({f.name for f in fields} ^ SWEEP_FLAGS.keys())}")
    for f in reversed(fields):
        flag, extra = SWEEP_FLAGS[f.name]
        default = () if extra.get("multiple") else None if f.default is dataclasses.MISSING else f.default
        text = f.metadata["help"] + (" Repeatable." if extra.get("multiple") else "")
        command = click.option(flag, f.name, default=default, show_default=default not in (None, ()),
                               help=text, **extra)(command)
    return command


def _config(options: dict) -> SweepConfig:
    """The flags' values as a SweepConfig (KEY=VALUE pruner arguments parsed)."""
    from .loading import parse_arg

    args = [parse_arg(i) for i in options["pruner_args"]]
    keys = [k for k, _ in args]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ParameterError("pruner_args", "given twice (give each key once)", repr(twice[0]))
    return SweepConfig(**{**options, "pruner_args": dict(args)})


@cli.command("run")
@_sweep_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run_cmd(quiet, **options):
    """Prune every planted network of a suite and judge the masks; resumes where it stopped."""
    from tqdm import tqdm

    from .report import summary_table
    from .runner import sweep

    bar = None

    def on_plan(todo, skipped):
        nonlocal bar
        if skipped:
            click.echo(f"resuming: {skipped} finished runs skipped, {todo} to do")
        bar = tqdm(total=todo, unit="run", disable=quiet or todo == 0, file=sys.stderr, dynamic_ncols=True)

    def progress(done, stage):
        bar.n = done
        bar.set_postfix_str(stage, refresh=False)
        bar.refresh()

    result = sweep(_config(options), progress, on_plan)
    if bar is not None:
        bar.close()
    records = result.previous + result.records
    if records:
        click.echo(summary_table(records))
    click.echo(f"results: {result.out / 'runs.jsonl'} ({len(result.records)} new, {result.skipped} skipped)")
    if result.failed:
        click.echo(f"{len(result.failed)} run(s) failed:", err=True)
        for r in result.failed:
            click.echo(f"  {r['task']} seed {r['seed']} density {r['density_target']:.4g}: {r['error']}", err=True)
        sys.exit(1)


@cli.command("verify")
@click.option("--pruner", required=True, help="The entry's pruner: a baseline name, FILE.py or FILE.py:ClassName.")
@click.option("--entry", required=True, metavar="DIR", help="The entry's results folder; verification.json goes there.")
@click.option("--seed-key", "key", required=True, metavar="FILE", help="The secret key file; - reads it from standard input.")
@click.option("--seeds", type=click.IntRange(1, 100), default=None, help="Secret seed indices to run [default: 3].")
@click.option("--out", default=None, help="Keep the secret-seed results here [default: a temporary folder].")
@click.option("--jobs", type=click.IntRange(1, 1024), default=None, help="Worker processes [default: CPU cores].")
def verify_cmd(pruner, entry, key, seeds, out, jobs):
    """Rerun an entry's pruner on secret seeds and compare; exit 1 unless its public scores hold up."""
    from .verify import HEADER, table, verify

    v = verify(pruner, entry, key, seeds, out, jobs)
    if v.rows:
        _table(HEADER, table(v))
    click.echo(f"{v.verdict}: {v.reason}" if v.reason else "verified: the secret-seed scores back the public ones")
    return 0 if v.verdict == "verified" else 1


@cli.command("results")
@click.argument("path", metavar="PATH")
@click.option("--format", "fmt", default="markdown", show_default=True, type=click.Choice(["csv", "json", "markdown"]),
              help="How to write the table.")
@click.option("--out", default=None, help="Write to this file instead of printing.")
def results_cmd(path, fmt, out):
    """The records under PATH as one table, one row per run: a results folder, its runs.jsonl, or a
    leaderboard folder. Nested fields become dotted columns (references.ticket_strong,
    timings.pruner_seconds); `score` is the leaderboard's headline score. The same table as
    plantbench.load_results(PATH)."""
    from .analysis import load_results, render
    from .fileio import atomic_write_bytes

    text = render(load_results(path), fmt)
    if out is None:
        click.echo(text, nl=False)
        return
    target = _writable(out, "--out")
    atomic_write_bytes(target, text.encode("utf-8"))
    click.echo(f"wrote {target}")


@cli.command("compare")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
def compare_cmd(a, b):
    """Compare two results folders on the same suite, one entry each: per task and density, the
    mean difference B - A of the normalised weak and strong scores and recall over the seeds both
    ran, with a two-sided paired t-test across seeds. Why a t-test: with the 2 to 5 seeds of a
    suite, Wilcoxon's signed-rank test cannot reach p < 0.05 (its smallest p with 5 pairs is
    0.0625); the t-test can, assuming roughly normal differences. Fewer than 2 seeds: no test;
    all differences zero: p = 1."""
    from .analysis import compare_results, format_comparison

    click.echo(format_comparison(compare_results(a, b)), nl=False)


@cli.group("leaderboard")
def leaderboard():
    """Build and check the leaderboard (README.md and plots) from the committed results."""


def _leaderboard_root(root: str) -> str:
    if not Path(root).is_dir():
        raise UsageError(f"--root {root}: no such folder")
    return root


@leaderboard.command("build")
@click.option("--root", default=LEADERBOARD_DIR, show_default=True, help="The leaderboard folder (holds results/).")
def leaderboard_build_cmd(root):
    """Write ROOT/README.md, ROOT/plots/ and the web leaderboard ROOT/site/ from ROOT/results/*/runs.jsonl."""
    from .leaderboard import build
    from .leaderboard.site import SITE_DIR

    paths = build(_leaderboard_root(root))
    plots = sum(p.parent.name == PLOTS_DIR for p in paths)
    click.echo(f"wrote {paths[0]}, {plots} plot files under {Path(root) / PLOTS_DIR} and the web leaderboard "
               f"{Path(root) / SITE_DIR / 'index.html'} ({len(paths) - 1 - plots} files)")


@leaderboard.command("check")
@click.option("--root", default=LEADERBOARD_DIR, show_default=True, help="The leaderboard folder (holds results/).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def leaderboard_check_cmd(root, quiet):
    """Validate every record, recompute what the masks determine, and compare the generated files."""
    from tqdm import tqdm

    from .errors import RecordError
    from .leaderboard import check, read_references, read_results

    bar = None

    def progress(done, total):  # records re-judged, with training, in the order their parts end
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="record", desc="re-judging", disable=quiet or not sys.stderr.isatty(),
                       file=sys.stderr,
                       dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        problems = check(_leaderboard_root(root), progress)
    finally:
        if bar is not None:
            bar.close()
    if problems:
        for p in problems:
            click.echo(p)
        n = len(problems)
        raise RecordError(f"{n} problem{'s' if n != 1 else ''}; first: {problems[0]}")
    records, _ = read_results(root)
    references, _ = read_references(root)
    click.echo(f"ok: {len(records)} records under {Path(root) / RESULTS_DIR} and {len(references)} reference records "
               "verified; README.md, plots and site are up to date")


@leaderboard.command("references")
@click.option("--root", default=LEADERBOARD_DIR, show_default=True, help="The leaderboard folder (holds results/).")
@click.option("--suite", "suites", multiple=True,
              help="Only this suite (repeatable) [default: every registered suite with results under ROOT].")
def leaderboard_references_cmd(root, suites):
    """Judge the planted ticket's own mask and the dense host (the reference rows) of every suite,
    task and seed the results use, appending the missing ones to ROOT/references/."""
    from .leaderboard import write_references
    from .suite import get_suite

    for name in suites:
        get_suite(name)  # an unknown name fails here, before any compute
    written = write_references(_leaderboard_root(root), suites or None,
                               lambda suite, task, n: click.echo(f"judging the references of {suite} {task} "
                                                                 f"({n} seed{'s' if n != 1 else ''})", err=True))
    click.echo(f"wrote {len(written)} reference records under {Path(root) / REFERENCES_DIR}")


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    click.echo(fmt.format(*header).rstrip())
    for r in rows:
        click.echo(fmt.format(*r).rstrip())


def main(argv=None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name="plantbench")


if __name__ == "__main__":
    main()
