"""``gptmini`` command line: train, sample, respond, checkpoints, export, prepare, plot."""

from __future__ import annotations

import sys

from gptmini.cli.args import Parser
from gptmini.errors import GPTMiniError, os_error_text


def build_parser() -> Parser:
    from gptmini.cli import checkpoints, classify, plot, prepare, respond, sample, train

    parser = Parser(prog="gptmini", description="Pretrain and sample a small GPT from scratch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    train.add_parser(sub)
    sample.add_parser(sub)
    sub.choices["sample"].set_defaults(run=sample.run)
    classify.add_parser(sub)
    respond.add_parser(sub)
    checkpoints.add_parsers(sub)
    prepare.add_parser(sub)
    plot.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except GPTMiniError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a full disk, a folder without permission: the cause the OS gave, in one line
        text = os_error_text(exc, getattr(args, "out", None))
        if text is None:
            raise
        print(f"error: {text}", file=sys.stderr)
        return 1
