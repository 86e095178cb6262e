"""``gptmini-tui``: train in the terminal console, or attach to a running run.

Takes every option of ``gptmini train`` plus ``--paused`` and ``--attach RUN_DIR``.
Mistakes in the options print one ``error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gptmini.cli.args import Parser, add_train_arguments, train_config_from_args
from gptmini.errors import GPTMiniError
from gptmini.paths import check_run_paths
from gptmini.runs import find_run_folders


def check_terminal() -> None:
    """The console draws a full screen: it needs a terminal that can show one."""
    term = os.environ.get("TERM", "")
    if not (sys.stdin.isatty() and sys.stdout.isatty()) or term in ("dumb", "unknown"):
        what = "TERM=" + term if term in ("dumb", "unknown") else "no terminal (input or output is not a tty)"
        raise GPTMiniError(f"gptmini-tui needs a terminal that can draw a full screen ({what}); "
                           f"to train without one use: gptmini train (same options)")


def build_parser() -> argparse.ArgumentParser:
    from gptmini_tui.actions import key

    p = Parser(
        prog="gptmini-tui",
        description="Train a small GPT from scratch in a terminal console: live loss plot, counters, "
        "checkpoints, and a playground that samples from the weights while they train.",
        epilog=f"Keys: {key('help')} shows them all inside the app. With no options it trains the cpu-demo "
        "preset on the embedded corpus.",
    )
    add_train_arguments(p)
    tui = p.add_argument_group("console")
    tui.add_argument("--paused", action="store_true",
                     help=f"load data and model, then wait for {key('toggle_pause')} to start")
    tui.add_argument(
        "--attach", metavar="RUN_DIR",
        help="follow a run another process is training (its metrics.jsonl and checkpoints); no training here",
    )
    tui.add_argument(
        "--compare", nargs="+", metavar="DIR", default=[],
        help="run folders (or folders of runs) to show beside this run on the loss plot and in the Runs panel",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    attach, paused, compare = args.attach, args.paused, [Path(p).expanduser() for p in args.compare]
    del args.attach, args.paused, args.compare
    try:
        for folder in compare:
            if not find_run_folders(folder):
                raise GPTMiniError(f"--compare: {folder} is not a run folder, nor a folder of runs "
                                   f"(no metrics.jsonl in it or its subfolders)")
        if attach is not None:
            given = sorted(k for k in vars(args))
            if given:
                raise GPTMiniError(
                    f"--attach follows another process's run; training options cannot be combined with it "
                    f"(got --{given[0].replace('_', '-')})"
                )
            run_dir = Path(attach).expanduser()
            if not run_dir.exists():
                raise GPTMiniError(f"--attach: no such run folder: {run_dir}")
            if not run_dir.is_dir():
                raise GPTMiniError(f"--attach: {run_dir} is a file; give the run folder that holds metrics.jsonl")
            config = None
        else:
            config = train_config_from_args(args)
            check_run_paths(config)
        check_terminal()
    except GPTMiniError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2

    from gptmini_tui.app import GPTMiniApp

    app = GPTMiniApp(config, attach=attach, start_paused=paused, compare=compare)
    app.run()
    if app.quit_report:
        try:
            print(app.quit_report)
        except OSError:  # the terminal hung up (SSH dropped): the checkpoint is saved all the same
            pass
    return int(app.return_code or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
