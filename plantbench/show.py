"""One picture of a task and its planted ticket, so a reader sees what a pruner is asked to find.

`render` draws three panels: the task's data, the function the planted ticket alone computes
(its output divided by the planting scale c) next to the true function, and the ticket as a
graph of neurons and weights. It backs `plantbench show TASK`.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .metrics import accuracy, mse
from .plant import PlantedNetwork, plant_task
from .seeding import derive_seed
from .task import Target, Task
from .taskfile import find_task

FRESH_SAMPLES = 10_000  # fresh draws for the ticket's metric in the panel title
GRID = 201  # points per axis of the ticket's 2-D decision grid (the host runs on every point)
FINE_GRID = 501  # points per axis for the true boundaries, which cost nothing
CURVE = 1_000  # points along 1-D inputs
MAX_POINTS = 2_000  # 3-D and fallback scatters clutter beyond this
MAX_NAMED_INPUTS = 16  # beyond this the graph's input names overlap; the column's count stands for them
POSITIVE, NEGATIVE = "#c0392b", "#2166ac"
TRUE_COLOR, TICKET_COLOR = "0.55", "#e67e22"


def render(task: Task | str, depth: int, width: int, seed: int, out: str | pathlib.Path) -> pathlib.Path:
    """Plant the task's ticket and draw the data, the ticket's function and the ticket's graph.

    Args:
        task: a Task, a registered task's name, or a task file FILE.py or FILE.py:ClassName.
        depth: ticket depth in weight layers.
        width: hidden width of the host.
        seed: the run seed: it fixes the host and the data.
        out: the file to write; its suffix picks the format (.png, .svg, ...), none means .png.
    Returns:
        The path written.
    """
    task = find_task(task) if isinstance(task, str) else task
    out = pathlib.Path(out)
    if not out.suffix:
        out = out.with_suffix(".png")
    task.check_host(depth, width)
    target = task.target(depth)
    net = plant_task(task, depth, width, seed)
    ticket = _ticket_function(net)
    data = task.dataset(seed)
    if task.image_shape:  # a fixed set of images: the ticket is scored on the test split
        fresh = (data.x_test, data.y_test)
    else:
        fresh = task.sample(FRESH_SAMPLES, torch.Generator().manual_seed(derive_seed(seed, "judge")))

    graph_ratio = 1.15 + 0.07 * max(0, len(target.sizes) - 4)
    fig = Figure(figsize=(5.6 * (2 + graph_ratio) + 1.2, 6.6))
    # Fixed margins rather than a layout engine: the same figure for every task and depth,
    # and room for the 3-D axis labels, which layout engines misjudge.
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, graph_ratio], left=0.045, right=0.99,
                            bottom=0.09, top=0.84, wspace=0.22)
    three_d = task.kind == "regression" and task.n_in == 1 and task.n_out == 3
    proj = "3d" if three_d else None
    ax_data = fig.add_subplot(grid[0], projection=proj)
    ax_fn = fig.add_subplot(grid[1], projection=proj)
    ax_graph = fig.add_subplot(grid[2])

    _draw_data(ax_data, task, data)
    _draw_ticket_function(ax_fn, task, data, ticket, fresh)
    _draw_graph(ax_graph, task, target, net, width)
    fig.suptitle(f"plantbench show: {task.id}, depth {depth}, width {width}, seed {seed}",
                 fontsize=15, fontweight="bold", y=0.975)
    _save(fig, out)
    return out


# --- the ticket's function --------------------------------------------------------------------


def _ticket_function(net: PlantedNetwork):
    """x -> ticket-only output / c, float64: the target function as the host computes it."""
    model, mask, c = net.model(), net.ticket_mask(), net.output_scale

    def f(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x.float(), mask=mask).double() / c

    return f


def _score(task: Task, ticket, fresh: tuple[torch.Tensor, torch.Tensor]) -> str:
    """The ticket's task metric on fresh noisy samples (an image task's test split), as a title fragment."""
    x, y = fresh
    out = ticket(x)
    if task.kind == "classification":
        which = "test" if task.image_shape else "fresh"
        return f"accuracy {float(accuracy(out, y)):.4f} on {len(x)} {which} samples"
    floor = f" (noise floor {task.noise**2:.1e})" if task.noise else ""
    return f"MSE {float(mse(out, y.reshape(out.shape))):.2e} on {len(x)} fresh samples{floor}"


def _line_x() -> torch.Tensor:
    return torch.linspace(-1, 1, CURVE, dtype=torch.float64)[:, None]


def _plane_grid(n: int) -> tuple[np.ndarray, torch.Tensor]:
    axis = np.linspace(-1, 1, n)
    xx, yy = np.meshgrid(axis, axis)
    return axis, torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], axis=1))


def _class_colors(n: int) -> list:
    cmap = colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.0, 0.9, n)]


def _output_names(task: Task) -> list[str]:
    if task.kind == "classification":
        return [f"class {k}" for k in range(task.n_out)]
    return ["y"] if task.n_out == 1 else [f"y{j + 1}" for j in range(task.n_out)]


def _input_names(task: Task) -> list[str]:
    return ["x"] if task.n_in == 1 else [f"x{i + 1}" for i in range(task.n_in)]


def _draw_data(ax, task: Task, data) -> None:
    x, y = data.x_train.double().numpy(), data.y_train.numpy()
    n = len(x)
    noise = f"{task.noise:.0%} labels flipped" if task.kind == "classification" else f"noise std {task.noise:g}"
    ax.set_title(f"data: {n} training points ({noise})", fontsize=11)
    if task.image_shape and task.kind == "classification":
        _draw_images(ax, task, x, y)
    elif task.kind == "classification" and task.n_in == 2:
        colors = _class_colors(task.n_out)
        for k in range(task.n_out):
            pick = y == k
            ax.scatter(x[pick, 0], x[pick, 1], s=3, color=colors[k], label=f"class {k} ({pick.sum()})",
                       rasterized=True, linewidths=0)
        _square(ax, task)
        ax.legend(loc="upper right", fontsize=8, markerscale=4, framealpha=0.9)
    elif task.kind == "regression" and task.n_in == 1 and task.n_out == 3:
        truth = task.function(_line_x()).numpy()
        pick = slice(0, min(n, MAX_POINTS))
        ax.scatter(*y[pick].T, s=2, color=POSITIVE, alpha=0.5, depthshade=False, rasterized=True,
                   label=f"noisy samples (first {min(n, MAX_POINTS)})")
        ax.plot(*truth.T, color="k", lw=1.2, label="true helix")
        _label_3d(ax, task)
        ax.legend(loc="upper left", fontsize=8, markerscale=3)
    elif task.n_in == 1:
        y2 = y.reshape(n, -1)
        for j, name in enumerate(_output_names(task)):
            ax.scatter(x[:, 0], y2[:, j], s=2, alpha=0.4, rasterized=True, linewidths=0, label=name)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        if task.n_out > 1:
            ax.legend(fontsize=8, markerscale=4)
    else:
        # No native picture: the first two inputs, coloured by the label or the first output.
        c = y if task.kind == "classification" else y.reshape(n, -1)[:, 0]
        ax.scatter(x[:, 0], x[:, 1] if task.n_in > 1 else np.zeros(n), c=c, s=3, rasterized=True)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")


def _draw_images(ax, task: Task, x: np.ndarray, y: np.ndarray, rows: int = 5, cols: int = 8) -> None:
    """The first few training images of each class, rows x cols in all, as one labelled mosaic."""
    h, w = task.image_shape
    order = np.concatenate([np.flatnonzero(y == k)[: max(1, rows * cols // task.n_out)] for k in range(task.n_out)])
    pick = order[: rows * cols]
    mosaic = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i, k in enumerate(pick):
        r, c = divmod(i, cols)
        mosaic[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = x[k].reshape(h, w)
        ax.text(c * (w + 1) + w - 0.6, r * (h + 1) + 0.4, str(y[k]), color="#c0392b", fontsize=8, ha="right", va="top")
    ax.imshow(mosaic, cmap=colormaps["gray_r"].with_extremes(bad="white"), vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{h}x{w} inputs in [-1, 1], label in red")


def _draw_ticket_function(ax, task: Task, data, ticket, fresh) -> None:
    ax.set_title(f"planted ticket alone (output / c)\n{_score(task, ticket, fresh)}", fontsize=11)
    if task.kind == "classification" and task.n_in == 2:
        _, pts = _plane_grid(GRID)
        pred = ticket(pts).argmax(1).numpy().reshape(GRID, GRID)
        true = task.function(pts).numpy().reshape(GRID, GRID)
        fine_axis, fine_pts = _plane_grid(FINE_GRID)
        fine_true = task.function(fine_pts).numpy().reshape(FINE_GRID, FINE_GRID)
        colors = _class_colors(task.n_out)
        ax.imshow(pred, origin="lower", extent=(-1, 1, -1, 1), cmap=ListedColormap(colors),
                  vmin=-0.5, vmax=task.n_out - 0.5, alpha=0.75, interpolation="nearest", rasterized=True)
        wrong = np.ma.masked_where(pred == true, np.ones_like(pred))
        ax.imshow(wrong, origin="lower", extent=(-1, 1, -1, 1), cmap=ListedColormap(["#d62728"]),
                  interpolation="nearest", rasterized=True)
        ax.contour(fine_axis, fine_axis, fine_true, levels=np.arange(task.n_out - 1) + 0.5, colors="k",
                   linestyles="--", linewidths=1.2)
        _square(ax, task)
        handles = [Line2D([], [], ls="", marker="s", ms=8, color=colors[k], label=f"ticket: class {k}")
                   for k in range(task.n_out)]
        handles += [Line2D([], [], color="k", ls="--", label="true boundaries"),
                    Line2D([], [], ls="", marker="s", ms=8, color="#d62728", label="ticket != truth")]
        ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
    elif task.kind == "regression" and task.n_in == 1:
        xs = _line_x()
        truth, pred = task.function(xs).numpy(), ticket(xs).numpy()
        if task.n_out == 3:
            ax.plot(*truth.T, color=TRUE_COLOR, lw=5, alpha=0.6, label="true function")
            ax.plot(*pred.T, color=TICKET_COLOR, lw=1.4, label="planted ticket")
            _label_3d(ax, task)
        else:
            x, y = data.x_train.numpy()[:, 0], data.y_train.numpy().reshape(len(data.x_train), -1)
            for j in range(task.n_out):
                ax.scatter(x, y[:, j], s=2, color="0.8", rasterized=True, linewidths=0,
                           label="training data" if j == 0 else None)
                ax.plot(xs[:, 0], truth[:, j], color=TRUE_COLOR, lw=5, alpha=0.6,
                        label="true function" if j == 0 else None)
                ax.plot(xs[:, 0], pred[:, j], color=TICKET_COLOR, lw=1.6,
                        label="planted ticket" if j == 0 else None)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        ax.legend(loc="upper left", fontsize=8)
    else:
        # No native picture: the ticket against the noiseless target on fresh inputs.
        x = fresh[0]
        pred, truth = ticket(x), task.function(x)
        if task.kind == "classification":
            k = task.n_out
            counts = torch.bincount(truth * k + pred.argmax(1), minlength=k * k).reshape(k, k).numpy()
            ax.imshow(counts, cmap="Greys")
            for (i, j), v in np.ndenumerate(counts):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                        color="white" if v > counts.max() / 2 else "black")
            ax.set_xticks(range(k))
            ax.set_yticks(range(k))
            ax.set_xlabel("class the planted ticket predicts")
            ax.set_ylabel("true class")
        else:
            pred, truth = pred[:MAX_POINTS].numpy(), truth[:MAX_POINTS].numpy()
            for j, name in enumerate(_output_names(task)):
                ax.scatter(truth[:, j], pred[:, j], s=3, rasterized=True, label=name)
            ax.set_xlabel("true function")
            ax.set_ylabel("planted ticket")
            ax.legend(fontsize=8, markerscale=3)


def _square(ax, task: Task) -> None:
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")
    names = _input_names(task)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])


def _label_3d(ax, task: Task) -> None:
    names = _output_names(task)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_zlabel(names[2])
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(5))
    ax.tick_params(labelsize=8)
    ax.view_init(elev=22, azim=-60)


# --- the ticket as a graph ----------------------------------------------------------------------


def _draw_graph(ax, task: Task, target: Target, net: PlantedNetwork, width: int) -> None:
    sizes = target.sizes
    n_layers = len(sizes)
    # Small columns get a fixed spacing, tall ones shrink to fit 0.04..0.96.
    steps = [min(0.92 / max(n - 1, 1), 0.12) for n in sizes]
    step = min(steps)
    ys = [0.5 + ((n - 1) / 2 - np.arange(n)) * d for n, d in zip(sizes, steps, strict=True)]

    segs, widths, colors, order = [], [], [], []
    for k, w in enumerate(target.weights):
        rows, cols = np.nonzero(w)
        mag = np.abs(w[rows, cols])
        rel = mag / mag.max() if len(mag) else mag
        for r, c, v, m in zip(rows, cols, w[rows, cols], rel, strict=True):
            segs.append(((k, ys[k][c]), (k + 1, ys[k + 1][r])))
            widths.append(0.5 + 3.5 * m)  # per-layer scale; the floor keeps weak weights visible
            colors.append(POSITIVE if v > 0 else NEGATIVE)
            order.append(m)
    idx = np.argsort(order, kind="stable")  # strongest edges drawn last, on top
    ax.add_collection(LineCollection([segs[i] for i in idx], linewidths=[widths[i] for i in idx],
                                     colors=[colors[i] for i in idx], alpha=0.7, zorder=1))

    pts_per_unit = 6.6 * 72 * 0.75 / 1.32  # about the points per y unit
    diam = float(np.clip(0.65 * step * pts_per_unit, 4, 14))
    for k, n in enumerate(sizes):
        has_bias = target.biases[k - 1] != 0 if k else np.zeros(n, dtype=bool)
        x = np.full(n, k, dtype=float)
        ax.scatter(x[~has_bias], ys[k][~has_bias], s=diam**2, facecolor="white", edgecolor="k",
                   linewidths=1.0, zorder=3)
        ax.scatter(x[has_bias], ys[k][has_bias], s=diam**2, facecolor="k", edgecolor="k",
                   linewidths=1.0, zorder=3)

    gap = diam / 2 + 3  # points between a neuron's edge and its name
    for i, name in enumerate(_input_names(task) if task.n_in <= MAX_NAMED_INPUTS else []):
        ax.annotate(name, (0, ys[0][i]), xytext=(-gap, 0), textcoords="offset points",
                    ha="right", va="center", fontsize=8)
    for j, name in enumerate(_output_names(task)):
        ax.annotate(name, (n_layers - 1, ys[-1][j]), xytext=(gap, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=8)
    for k, n in enumerate(sizes):
        name = "input" if k == 0 else "output" if k == n_layers - 1 else f"layer {k}"
        ax.text(k, -0.02, f"{name}\n{n}", ha="center", va="top", fontsize=9)

    # Fixed limits: neurons fill 0.04..0.96, labels and legend sit below, the same in every figure.
    ax.set_xlim(-0.75, n_layers - 0.25)
    ax.set_ylim(-0.28, 1.04)
    ax.axis("off")
    ax.set_title(f"ticket: {target.n_weights} weights in a {width}-wide host "
                 f"(density {net.ticket_density:.2g})", fontsize=11)
    handles = [Line2D([], [], color=POSITIVE, lw=2.5, label="positive weight"),
               Line2D([], [], color=NEGATIVE, lw=2.5, label="negative weight"),
               Line2D([], [], ls="", marker="o", ms=7, mfc="k", mec="k", label="nonzero bias"),
               Line2D([], [], ls="", marker="o", ms=7, mfc="white", mec="k", label="zero bias")]
    ax.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False,
              title="edge width ~ |weight| / largest |weight| of its layer", title_fontsize=8)


def _save(fig: Figure, out: pathlib.Path) -> None:
    """Write through a temporary file in the same folder, so no half-written picture is left."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format=out.suffix.lstrip(".").lower(), dpi=100)
        os.replace(tmp, out)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
