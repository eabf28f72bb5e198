"""The teacher suite's breaking-point plots: per pruner, the normalised weak score at the ticket's
density against the teacher's fan-in, and against its width.

A ladder is a set of the suite's teacher tasks that differ in that one knob only (teacher-w8,
-w16 and -w32 in width; teacher-w16, -k4 and -k8 in fan-in); each ladder with records for at
least two of its tasks is one panel, drawn like the cross-suite plots (kind "across"). Where a
pruner's line falls from 1 (the planted ticket) towards 0 (chance) is where it breaks. Without
records of the teacher suite there is no such plot, and a leaderboard builds as before.
"""

from __future__ import annotations

import dataclasses

from .ranking import Board, TaskInfo

TEACHER_SUITE = "teacher"
# knob -> (stem, x-axis label, the knob in titles and captions)
KNOBS = {
    "fan_in": ("appendix_teacher_fanin_weak", "teacher fan-in (inputs each hidden neuron reads)", "fan-in"),
    "width": ("appendix_teacher_width_weak", "teacher width (neurons per hidden layer)", "width"),
}
# (stem, what the plot shows) for the README and site guides
GUIDE = tuple((stem, f"against the teacher's {word}") for stem, _, word in KNOBS.values())


def breaking_specs(board: Board) -> dict[str, dict]:
    """The breaking-point plot specs the records call for (stem -> spec); none without teacher records."""
    from ..suite import SUITES
    from .appendix import _spec

    suite = SUITES.get(TEACHER_SUITE)
    if suite.id not in board.entries:
        return {}
    specs = {}
    for knob, (stem, xlabel, _) in KNOBS.items():
        ladders = ladders_of(board.tasks.get(suite.id, []), knob)
        if ladders:
            points = {panel: {x: (suite.id, info) for x, info in rungs.items()} for panel, rungs in ladders.items()}
            spec = _spec(board, points, xlabel, "")
            # A short title: the figure has one panel, and the legend sits beside the title.
            spec["title"] = f"{suite.id}: normalised weak score at the ticket's density"
            specs[stem] = spec
    return specs


def ladders_of(infos: list[TaskInfo], knob: str) -> dict[str, dict[int, TaskInfo]]:
    """Panel title -> {knob value: task} for every group of teacher tasks alike but for the knob
    (and the teacher's seed), with at least two values; tasks that are not teachers are left out."""
    from ..task import TASKS

    groups: dict[str, dict[int, TaskInfo]] = {}
    for info in sorted(infos, key=lambda i: i.task):
        spec = getattr(TASKS.at_version(info.task), "teacher_spec", None)
        if spec is None:
            continue
        rest = dataclasses.replace(spec, **{knob: 0, "seed": 0})
        groups.setdefault(_title(rest, knob), {}).setdefault(getattr(spec, knob), info)
    return {title: dict(sorted(rungs.items())) for title, rungs in sorted(groups.items()) if len(rungs) >= 2}


def _title(spec, knob: str) -> str:
    """What the tasks of one ladder share, e.g. 'regression: 16 in, 2 out, width 16, depth 4'."""
    parts = [f"{spec.n_in} in", f"{spec.n_out} out"]
    parts += [f"width {spec.width}"] if knob != "width" else []
    parts += [f"fan-in {spec.fan_in}"] if knob != "fan_in" else []
    return f"{spec.kind}: {', '.join(parts)}, depth {spec.depth}, noise {spec.noise:g}"
