"""``gptmini prepare``: tokenise a corpus into the token cache ahead of training (no torch needed)."""

from __future__ import annotations

import threading

from rich.console import Console

from gptmini.cli.args import train_config_from_args
from gptmini.options import add_option_arguments

NOTHING_SAVED = "nothing was saved (the token cache holds no part of it)"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prepare", help="tokenise a corpus into the cache, ahead of training",
        description="Tokenise a corpus once into the token cache, so that `gptmini train` and `gptmini-tui` with "
                    "the same data and tokenizer start at once. Runs without PyTorch (little memory), e.g. while "
                    "another job trains.")
    add_option_arguments(p, ("data", "corpus", "tokenizer", "preset"))
    p.set_defaults(run=run)


def run(args) -> int:
    from gptmini.cli.signals import StopSignals
    from gptmini.cli.train import ConsoleReporter
    from gptmini.data.tokens import TokenisingProgress, tokenize_corpus
    from gptmini.stopping import Stopped, stoppable
    from gptmini.text.corpus import load_corpus

    cfg = train_config_from_args(args)
    console = Console()
    reporter = ConsoleReporter(console)
    stop = threading.Event()
    signals = StopSignals(stop.set, lambda: "stopping (press Ctrl+C again to stop at once)",
                          lambda: f"stopped at once; {NOTHING_SAVED}")
    try:
        with signals, stoppable(stop):
            corpus = load_corpus(cfg.data, cfg.corpus)
            progress = TokenisingProgress(reporter, corpus, cfg.tokenizer_name)
            tokenizer, data = tokenize_corpus(corpus, cfg.tokenizer_name, progress=progress, warn=progress.warn)
            progress.finish(data)
    except Stopped:
        reporter.close()
        console.print(f"stopped before the corpus was tokenised; {NOTHING_SAVED}", highlight=False)
        return 128 + signals.signum
    finally:
        reporter.close()
    how = "already in the cache" if data.from_cache else "tokenised"
    console.print(f"{corpus.name}: {corpus.n_bytes / 1e6:.2f} MB -> {data.n_tokens:,} {tokenizer.name} tokens "
                  f"({tokenizer.vocab_size:,}-token vocabulary), {how}\ncache: {data.path}", highlight=False,
                  soft_wrap=True)
    return 0
