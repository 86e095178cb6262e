"""Fine-tuning on the CPU: GPTMini's engine vs the book's own loops (chapters 6 and 7), side by side.

    python bench/bench_finetune.py instruct [--shape small|124m] [--epochs 1] [--rounds 2] [--json out.json]
    python bench/bench_finetune.py classify [--shape small] [--pretrain-steps 300] [--rounds 2] [--json out.json]

instruct (issue 26): the book's ``instruction-data.json`` (../shared/data), split as the book splits it
(85 / 10 / 5 % in file order; both arms get the same train and validation records). The same random
weights go into both: GPTMini's ``GPT`` and the book's ``GPTModel`` (``gptmini.interop.book.to_book``).
  book   ``llms_from_scratch.ch07`` ``InstructionDataset`` + ``custom_collate_fn`` (batch 8, shuffled, drop
         last), ``ch05.train_model_simple`` (AdamW lr 5e-5, wd 0.1, eval_freq 5, eval_iter 5, a sample per
         epoch), as chapter 7 runs it.
  ours   ``gptmini train --task instruct`` through the engine with no speed flags (``--dtype auto``), the book's
         recipe (AdamW 5e-5, wd 0.1, betas 0.9/0.999, constant rate, no clipping) and the same evaluation cadence
         (every 5 steps, 5 batches) and a sample after each evaluation.
  Both train the same number of epochs; reported: target tokens (the targets that are not ignored) per second
  of the whole training call, and the validation loss of each final model over the whole validation split,
  measured by the book's ``calc_loss_loader`` on the book's validation loader.

classify (issue 27): a model is first pre-trained with GPTMini on the-verdict + tiny-shakespeare (GPT-2 BPE),
and a labelled set is made of lines of the two (which book a line comes from, balanced). Both arms start from
those weights with a new 2-label head.
  book   ``ch06``: texts padded to the longest training text, last-token loss, the last block + final norm +
         head training, AdamW 5e-5 wd 0.1, ``train_classifier_simple`` for 5 epochs (eval_freq 50, eval_iter 5).
  ours   ``gptmini train --task classify`` (the book's defaults: last block, norm and head; 5e-5; no speed
         flags), evaluating on the whole validation split every ``--eval-every`` steps.
  Reported: the book's validation accuracy after its 5 epochs and its wall time; the wall time GPTMini takes
  to first reach that validation accuracy (evaluations included), and the ratio.

Every run prints the machine (CPU flags). Rounds alternate the arms (book, ours, ours, book, ...).
Setup: ``pip install --no-deps llms-from-scratch`` and ``pip install numpy tqdm matplotlib pandas``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe as describe_machine  # noqa: E402
from _reference import ROOT, code_version, data_file, gpt2_encoding  # noqa: E402

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from gptmini import events as ev  # noqa: E402
from gptmini.ckpt.store import save_checkpoint  # noqa: E402
from gptmini.interop.book import to_book  # noqa: E402
from gptmini.model.config import ModelConfig  # noqa: E402
from gptmini.model.gpt import GPT  # noqa: E402
from gptmini.text.tokenizer import build_tokenizer  # noqa: E402
from gptmini.train.engine import Trainer  # noqa: E402
from gptmini.train_config import TrainConfig  # noqa: E402

SHAPES = {"small": dict(n_layers=4, n_heads=4, d_model=256), "124m": dict(n_layers=12, n_heads=12, d_model=768)}


def save_as_run(model: GPT, folder: Path, tokenizer) -> Path:
    """``model``'s weights as a GPTMini checkpoint folder (what ``--init-from`` reads)."""
    manifest = {"model_config": model.config.to_dict(), "tokenizer": tokenizer.describe(), "task": {"name": "pretrain"}}
    return save_checkpoint(folder, 0, {k: v.detach().contiguous() for k, v in model.state_dict().items()}, None,
                           manifest)


def run_ours(cfg: TrainConfig) -> tuple[float, Trainer, list[ev.Event]]:
    events: list[ev.Event] = []
    trainer = Trainer(cfg)
    trainer.subscribe(events.append)
    started = {}
    trainer.subscribe(lambda e: started.setdefault("t", time.perf_counter())
                      if isinstance(e, ev.StateChanged) and e.state == "running" else None)
    finished = trainer.run()
    assert finished.reason == "completed", [e for e in events if isinstance(e, ev.Error)]
    return time.perf_counter() - started["t"], trainer, events


# ------------------------------------------------------------------ instruct
def instruct(args) -> dict:
    from llms_from_scratch import ch05, ch07

    path = data_file("instruction-data.json")
    if path is None:
        sys.exit("../shared/data/instruction-data.json is not here: nothing to measure")
    data = json.loads(path.read_text())
    n_train, n_test = int(len(data) * 0.85), int(len(data) * 0.1)
    train, val = data[:n_train], data[n_train + n_test:]
    work = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    (work / "train.json").write_text(json.dumps(train))
    (work / "val.json").write_text(json.dumps(val))
    enc, tok = gpt2_encoding(), build_tokenizer("gpt2")
    torch.manual_seed(123)
    base = GPT(ModelConfig(vocab_size=50257, context_length=1024, dropout=0.0, **SHAPES[args.shape]))
    save_as_run(base, work / "base", tok)
    collate = partial(ch07.custom_collate_fn, allowed_max_length=1024)
    val_loader = DataLoader(ch07.InstructionDataset(val, enc), batch_size=8, collate_fn=collate, shuffle=False)

    def book_arm() -> tuple[float, float, int]:
        model = to_book(base, ch04_model()).train()
        torch.manual_seed(123)
        loader = DataLoader(ch07.InstructionDataset(train, enc), batch_size=8, collate_fn=collate, shuffle=True,
                            drop_last=True)
        targets = sum(int((y != -100).sum()) for _, y in loader) * args.epochs
        torch.manual_seed(123)
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            ch05.train_model_simple(model, loader, val_loader, opt, "cpu", num_epochs=args.epochs, eval_freq=5,
                                    eval_iter=5, start_context=ch07.format_input(val[0]), tokenizer=enc)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            return seconds, ch05.calc_loss_loader(val_loader, model.eval(), "cpu"), targets

    def our_arm() -> tuple[float, float, int]:
        cfg = TrainConfig(task="instruct", data=[str(work / "train.json")], val_data=str(work / "val.json"),
                          init_from=str(work / "base"), out=str(work / f"ours-{time.monotonic_ns()}"),
                          epochs=args.epochs, batch_size=8, lr=5e-5, min_lr=5e-5, warmup_steps=0, weight_decay=0.1,
                          beta2=0.999, grad_clip=0.0, eval_interval=5, eval_batches=5, sample_tokens=50,
                          save_interval=10**9, keep_last=1, seed=123)
        seconds, trainer, events = run_ours(cfg)
        targets = [e for e in events if isinstance(e, ev.Step)][-1].tokens_seen
        model = to_book(trainer.snapshot().model, ch04_model()).eval()
        with torch.no_grad():
            return seconds, ch05.calc_loss_loader(val_loader, model, "cpu"), targets

    rows = alternate({"book": book_arm, "ours": our_arm}, args.rounds)
    out = {"task": "instruct", "shape": args.shape, "epochs": args.epochs, "rows": rows}
    for arm in ("book", "ours"):
        runs = rows[arm]
        out[arm] = {"tok_s": statistics.median(t / s for s, _, t in runs), "val_loss": [v for _, v, _ in runs],
                    "seconds": [s for s, _, _ in runs]}
    out["ratio"] = out["ours"]["tok_s"] / out["book"]["tok_s"]
    print(f"instruct, {args.shape}, {args.epochs} epoch(s): book {out['book']['tok_s']:,.0f} target tok/s, ours "
          f"{out['ours']['tok_s']:,.0f} -> {out['ratio']:.2f}x; final val loss book "
          f"{', '.join(f'{v:.3f}' for v in out['book']['val_loss'])} vs ours "
          f"{', '.join(f'{v:.3f}' for v in out['ours']['val_loss'])}")
    return out


def ch04_model():
    from llms_from_scratch.ch04 import GPTModel

    return GPTModel


def alternate(arms: dict, rounds: int) -> dict[str, list]:
    """Each arm ``rounds`` times, in ABBA order so a change in the machine's load hits both alike."""
    rows: dict[str, list] = {name: [] for name in arms}
    names = list(arms)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            result = arms[name]()
            rows[name].append(result)
            print(f"  round {r + 1} {name}: {result}", flush=True)
    return rows


# ------------------------------------------------------------------ classify
def labelled_lines(seed: int = 123, per_label: int = 400) -> list[tuple[str, int]]:
    out = []
    for label, name in enumerate(("the-verdict.txt", "tinyshakespeare.txt")):
        path = data_file(name)
        if path is None:
            sys.exit(f"../shared/data/{name} is not here: nothing to measure")
        lines = [ln.strip() for ln in path.read_text().splitlines() if len(ln.split()) >= 6]
        random.Random(seed).shuffle(lines)
        out += [(ln, label) for ln in lines[:per_label]]
    random.Random(seed + 1).shuffle(out)
    return out


def classify(args) -> dict:
    import pandas as pd
    from llms_from_scratch import ch06

    work = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    text = work / "corpus.txt"
    text.write_text(data_file("the-verdict.txt").read_text() + "\n\n" + data_file("tinyshakespeare.txt").read_text())
    pre = TrainConfig(data=[str(text)], tokenizer="gpt2", context=128, out=str(work / "pre"), max_steps=args.pretrain_steps,
                      batch_size=16, eval_interval=10**9, save_interval=10**9, **SHAPES[args.shape])
    seconds, _, _ = run_ours(pre)
    print(f"pre-trained {args.shape} for {args.pretrain_steps} steps in {seconds:.0f} s", flush=True)
    rows = labelled_lines()
    n = len(rows)
    n_train, n_val = int(n * 0.7), int(n * 0.1)
    parts = {"train": rows[:n_train], "val": rows[n_train:n_train + n_val], "test": rows[n_train + n_val:]}
    for name, part in parts.items():
        pd.DataFrame({"Text": [t for t, _ in part], "Label": [label for _, label in part]}).to_csv(
            work / f"{name}.csv", index=False)
    enc = gpt2_encoding()
    train_ds = ch06.SpamDataset(work / "train.csv", enc)
    val_ds = ch06.SpamDataset(work / "val.csv", enc, max_length=train_ds.max_length)
    test_ds = ch06.SpamDataset(work / "test.csv", enc, max_length=train_ds.max_length)
    from gptmini.ckpt.state import load_for_inference

    base, _, _ = load_for_inference(work / "pre")

    def book_arm():
        torch.manual_seed(123)
        model = to_book(base, ch04_model())
        for p in model.parameters():
            p.requires_grad = False
        model.out_head = torch.nn.Linear(base.config.d_model, 2)
        for module in (model.trf_blocks[-1], model.final_norm):
            for p in module.parameters():
                p.requires_grad = True
        loader = DataLoader(train_ds, batch_size=8, shuffle=True, drop_last=True)
        val_loader = DataLoader(val_ds, batch_size=8)
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            ch06.train_classifier_simple(model, loader, val_loader, opt, "cpu", num_epochs=5, eval_freq=50,
                                         eval_iter=5)
        seconds = time.perf_counter() - t0
        return seconds, ch06.calc_accuracy_loader(val_loader, model, "cpu"), \
            ch06.calc_accuracy_loader(DataLoader(test_ds, batch_size=8), model, "cpu")

    def our_arm():
        files = {}
        for name in ("train", "val", "test"):
            df = pd.read_csv(work / f"{name}.csv")
            df["Label"] = df["Label"].map({0: "verdict", 1: "shakespeare"})
            df.to_csv(work / f"ours-{name}.csv", index=False)
            files[name] = str(work / f"ours-{name}.csv")
        cfg = TrainConfig(task="classify", data=[files["train"]], val_data=files["val"], test_data=files["test"],
                          text_column="Text", label_column="Label", init_from=str(work / "pre"),
                          out=str(work / f"cls-{time.monotonic_ns()}"), epochs=5, eval_interval=args.eval_every,
                          eval_batches=10**6, save_interval=10**9, keep_last=1, seed=123)
        seconds, trainer, events = run_ours(cfg)
        t0 = next(e.time for e in events if isinstance(e, ev.StateChanged) and e.state == "running")
        evals = [(e.time - t0, e.metrics["val_accuracy"]) for e in events if isinstance(e, ev.Eval)]
        finished = [e for e in events if isinstance(e, ev.Finished)][-1]
        return seconds, evals, finished.metrics.get("test_accuracy")

    results = alternate({"book": book_arm, "ours": our_arm}, args.rounds)
    book_seconds = statistics.median(s for s, _, _ in results["book"])
    target = statistics.median(acc for _, acc, _ in results["book"])
    reach = []
    for _, evals, _ in results["ours"]:
        reach.append(next((t for t, acc in evals if acc >= target), float("inf")))
    out = {"task": "classify", "shape": args.shape, "book_seconds": book_seconds, "book_val_accuracy": target,
           "book_test_accuracy": [t for _, _, t in results["book"]], "ours_seconds_to_that": reach,
           "ours_test_accuracy": [t for _, _, t in results["ours"]],
           "ours_curves": [evals for _, evals, _ in results["ours"]]}
    out["ratio"] = statistics.median(reach) / book_seconds
    print(f"classify, {args.shape}: the book's loop reaches val accuracy {target:.3f} after 5 epochs in "
          f"{book_seconds:.0f} s; GPTMini reaches it in {statistics.median(reach):.0f} s -> "
          f"{out['ratio']:.2f} of the book's time; test accuracy book {out['book_test_accuracy']} vs ours "
          f"{out['ours_test_accuracy']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=("instruct", "classify"))
    parser.add_argument("--shape", choices=tuple(SHAPES), default="small")
    parser.add_argument("--epochs", type=int, default=1, help="instruct: epochs per arm (the book: 2)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pretrain-steps", type=int, default=300, help="classify: GPTMini pre-training steps")
    parser.add_argument("--eval-every", type=int, default=10, help="classify: our steps between evaluations")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe_machine())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, code {code_version()} ({ROOT})")
    out = instruct(args) if args.task == "instruct" else classify(args)
    out["machine"] = describe_machine()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
