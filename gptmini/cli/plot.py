"""``gptmini plot RUN [RUN...] --out loss.png``: the train (smoothed) and validation loss of runs, one colour
each, drawn with matplotlib (an optional extra: ``pip install 'gptmini[plot]'``)."""

from __future__ import annotations

import os
from pathlib import Path

from gptmini import tempfiles
from gptmini.errors import ConfigError
from gptmini.paths import check_output_file

X_AXES = ("steps", "tokens", "epochs", "time")


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="draw the loss curves of runs into an image (matplotlib)",
                       description="Draw the train (smoothed) and validation loss of one or several runs, "
                                   "from their metrics.jsonl, into a PNG, SVG or PDF.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or folders of runs)")
    p.add_argument("--out", required=True, metavar="FILE", help="the image: .png, .svg or .pdf")
    p.add_argument("--log-y", action="store_true", help="log-scale y axis")
    p.add_argument("--x", choices=X_AXES, default="steps", help="x axis (steps)")
    p.add_argument("--smooth", type=int, default=0, metavar="N",
                   help="smooth the train loss over the last N steps (0: the engine's running average)")
    p.add_argument("--dpi", type=int, default=120, help="dots per inch of a PNG (120)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(run=run)


def figure(runs: list[Path], *, x: str = "steps", log_y: bool = False, smooth: int = 0):
    """The matplotlib figure of ``runs`` (each its own colour: smoothed train line, val points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gptmini.history import ViewOptions
    from gptmini.runs import RunCurve

    fig, ax = plt.subplots(figsize=(9, 5))
    for i, path in enumerate(runs):
        curve = RunCurve(path)
        curve.poll()
        view = curve.history.view(ViewOptions(x, buckets=2000, smooth=smooth))
        color = f"C{i % 10}"
        ax.plot(view.smooth_x, view.smooth_y, color=color, linewidth=1.4, label=f"{path.name} train")
        if view.val_x:
            ax.plot(view.val_x, view.val_y, "o", color=color, markersize=4, label=f"{path.name} val")
    ax.set_xlabel({"time": "wall time (s)"}.get(x, x))
    ax.set_ylabel("loss")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(args) -> int:
    from gptmini.runs import find_run_folders

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("gptmini plot draws with matplotlib, which is not installed: "
                          "pip install 'gptmini[plot]' (or pip install matplotlib)") from None
    runs: list[Path] = []
    for arg in args.runs:
        found = find_run_folders(arg)
        if not found:
            raise ConfigError(f"{arg} is not a run folder, nor a folder of runs (no metrics.jsonl)")
        runs += [p for p in found if p not in runs]
    out = Path(args.out).expanduser()
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ConfigError(f"--out must end in .png, .svg or .pdf, got {out}")
    if args.smooth < 0:
        raise ConfigError(f"--smooth must be 0 or more, got {args.smooth}")
    check_output_file(out, force=args.force)  # before any drawing: an existing file, a folder, no permission
    fig = figure(runs, x=args.x, log_y=args.log_y, smooth=args.smooth)
    save_figure(fig, out, dpi=args.dpi)
    print(f"wrote {out}: {len(runs)} run(s), x: {args.x}{', log y' if args.log_y else ''}")
    return 0


def save_figure(fig, out: Path, *, dpi: int) -> None:
    """Write the image whole or not at all (a temporary file renamed into place); a failed write is one line
    naming the cause the OS gave."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfiles.in_progress(tmp):
            fig.savefig(tmp, dpi=dpi, format=out.suffix.lower().lstrip("."))
            os.replace(tmp, out)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
