"""Instruction fine-tuning (the book's chapter 7): data read and checked, batches as the book pads them,
training that learns, an exact resume, and a start from the user's own pre-trained run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptmini import events as ev
from gptmini.data.batch import IGNORE_INDEX
from gptmini.data.instructions import SPLIT_FRACTIONS, Example, collate, read_records
from gptmini.data.prompts import PROMPT_STYLES
from gptmini.data.splits import shares
from gptmini.errors import ConfigError, CorpusError
from gptmini.train.engine import Trainer
from gptmini.train_config import TrainConfig
from tests.helpers import Recorder, read_metrics

RECORDS = [{"instruction": f"Add {a} and {b}.", "input": "" if i % 3 else f"{a}+{b}", "output": f"It is {a + b}."}
           for i, (a, b) in enumerate((a, b) for a in range(1, 8) for b in range(1, 8))]  # 49 records


@pytest.fixture
def tasks_file(tmp_path) -> Path:
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(RECORDS, indent=1))
    return path


def instruct_config(data: Path, out: Path, **kw) -> TrainConfig:
    opts = dict(task="instruct", data=[str(data)], out=str(out), tokenizer="char", n_layers=1, n_heads=2, d_model=32,
                context=192, batch_size=4, max_steps=24, eval_interval=12, eval_batches=2, sample_tokens=12,
                lr=3e-3, seed=5)
    opts.update(kw)
    return TrainConfig(**opts)


# ------------------------------------------------------------------ reading and checking
def test_records_are_read_from_a_json_list_and_from_json_lines(tmp_path, tasks_file):
    lines = tmp_path / "tasks.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in RECORDS[:3]) + "\n\n" +
                     json.dumps({"prompt": "Say hi", "completion": " hi"}) + "\n")
    assert [r.instruction for r in read_records(tasks_file)][:2] == ["Add 1 and 1.", "Add 1 and 2."]
    recs = read_records(lines)
    assert len(recs) == 4 and (recs[3].instruction, recs[3].input, recs[3].output) == ("Say hi", "", " hi")


@pytest.mark.parametrize("content, said", [
    ('[{"instruction": "a", "output": "b"},\n {"instruction": "c" "output": "d"}]', "line 2, column"),
    ('{"instruction": "a", "output": "b"}\n{"instruction": oops}\n', "JSON Lines at line 2, column 17"),
    ('[{"instruction": "a", "output": "b"}, {"instruction": "c"}]', "record 2 lacks the field 'output'"),
    ('[{"instruction": "a", "output": 3}]', "record 1: 'output' is int, not text"),
    ('[{"question": "a", "answer": "b"}]', "record 1 has neither instruction/output nor prompt/completion"),
    ('[]', "holds no records"),
    ('[["a", "b"]]', "record 1 is list"),
])
def test_bad_instruction_data_is_one_line_naming_the_place(tmp_path, content, said):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CorpusError, match=None) as info:
        read_records(path)
    assert said in str(info.value) and "\n" not in str(info.value)


def test_the_split_is_85_10_5_by_the_seed():
    split = shares(1100, 3, SPLIT_FRACTIONS)
    assert [len(split[k]) for k in ("train", "test", "val")] == [935, 110, 55]  # the book's sizes
    assert sorted(split["train"] + split["test"] + split["val"]) == list(range(1100))
    assert split == shares(1100, 3, SPLIT_FRACTIONS) and split != shares(1100, 4, SPLIT_FRACTIONS)


# ------------------------------------------------------------------ batches as the book makes them
def test_batches_are_padded_as_the_book_pads_them():
    """The first end-of-text stays a target (the model learns to stop); the rest of the padding is ignored;
    with --mask-prompt the prompt's targets are too."""
    eot = 9
    a = Example(torch.tensor([1, 2, 3, 4, eot]).numpy(), n_prompt=2, index=0)
    b = Example(torch.tensor([5, 6, eot]).numpy(), n_prompt=1, index=1)
    x, y, n = collate([a, b], pad_id=eot, mask_prompt=False)
    assert x.tolist() == [[1, 2, 3, 4], [5, 6, eot, eot]]
    assert y.tolist() == [[2, 3, 4, eot], [6, eot, IGNORE_INDEX, IGNORE_INDEX]]
    assert n == 6
    _, y, n = collate([a, b], pad_id=eot, mask_prompt=True)
    assert y.tolist() == [[IGNORE_INDEX, 3, 4, eot], [6, eot, IGNORE_INDEX, IGNORE_INDEX]] and n == 5


def test_an_answer_ends_at_the_marker_its_examples_end_with():
    """The playground and the samples stop where a trained answer stops: end-of-text, or for a tokenizer without
    one (char) the blank line every example ends with."""
    from gptmini.data.instructions import end_marker
    from gptmini.sample.settings import SamplingSettings
    from gptmini.tasks.instruct import answer_settings
    from gptmini.text.tokenizer import build_tokenizer

    wanted = SamplingSettings(strategy="top-k", top_k=5, max_new_tokens=7)
    char = build_tokenizer("char", "It is 5.\n\n")
    assert answer_settings(char, wanted) == SamplingSettings(strategy="top-k", top_k=5, max_new_tokens=7, stop="\n\n")
    assert char.decode(end_marker(char)) == answer_settings(char, wanted).stop
    gpt2 = build_tokenizer("gpt2")
    assert answer_settings(gpt2, wanted) == wanted and end_marker(gpt2) == [gpt2.eot_id]  # the sampler stops at it


def test_batches_and_loss_equal_the_books(tasks_file):
    """The same records, the same weights: the book's InstructionDataset + custom_collate_fn give the same
    batch and GPTMini's model the same loss (to 1e-5) as the book's model."""
    ch07 = pytest.importorskip("llms_from_scratch.ch07")
    from gptmini.data.instructions import tokenize_examples
    from gptmini.text.tokenizer import build_tokenizer

    tok = build_tokenizer("gpt2")
    records = read_records(tasks_file)[:6]
    book = [item for item in ch07.InstructionDataset([r.source | {"input": r.input} for r in records], tok)]
    x_book, y_book = ch07.custom_collate_fn(book)
    examples = tokenize_examples(records, list(range(6)), tok, PROMPT_STYLES["alpaca"], "tasks.json")
    x, y, n = collate(examples, pad_id=50256, mask_prompt=False)
    assert torch.equal(x, x_book) and torch.equal(y, y_book) and n == int((y_book != -100).sum())

    from llms_from_scratch.ch04 import GPTModel

    from gptmini.interop.book import to_book
    from gptmini.model.config import ModelConfig
    from gptmini.model.gpt import GPT

    torch.manual_seed(0)
    ours = GPT(ModelConfig(vocab_size=50257, context_length=128, n_layers=2, n_heads=2, d_model=32)).eval()
    theirs = to_book(ours, GPTModel).eval()
    with torch.no_grad():
        loss_book = torch.nn.functional.cross_entropy(theirs(x_book).flatten(0, 1), y_book.flatten())
        _, loss = ours(x, y)
    assert loss.item() == pytest.approx(loss_book.item(), abs=1e-5)


# ------------------------------------------------------------------ training
def test_instruct_training_learns_counts_targets_and_shows_answers(tasks_file, tmp_path):
    rec = Recorder()
    trainer = Trainer(instruct_config(tasks_file, tmp_path / "run"))
    trainer.subscribe(rec)
    finished = trainer.run()
    assert finished.reason == "completed", rec.of(ev.Error)
    started = rec.of(ev.RunStarted)[0]
    assert started.task == "instruct"
    steps = rec.of(ev.Step)
    assert steps[-1].loss < steps[0].loss - 1.0
    # tokens seen count targets, not padding: every step adds what its batch really held
    gaps = [b.tokens_seen - a.tokens_seen for a, b in zip(steps, steps[1:])]
    assert len(set(gaps)) > 1 and all(0 < g < 4 * 191 for g in gaps)
    samples = rec.of(ev.Sample)
    assert samples and all(s.reference is not None and s.reference.startswith("It is") for s in samples)
    from gptmini.tasks.instruct import answers, respond

    model, style = trainer.snapshot().model, PROMPT_STYLES["alpaca"]
    prompts = [style.prompt(r["instruction"], r["input"]) for r in RECORDS[:5]]
    # the samples' answers are generated together; each equals the one-prompt answer
    assert answers(model, trainer.tokenizer, prompts, 12) == [respond(model, trainer.tokenizer, p, 12) for p in prompts]
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert [len(split[k]["indices"]) for k in ("train", "test", "val")] == [41, 4, 4]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"]["name"] == "instruct" and config["task"]["template"] == "alpaca"


def test_an_instruct_run_resumes_exactly_mid_epoch(tasks_file, tmp_path):
    same = dict(dropout=0.1, warmup_steps=2, lr_decay_steps=24)  # the schedule must not depend on max_steps
    full = Trainer(instruct_config(tasks_file, tmp_path / "full", **same))
    full.run()
    part = Trainer(instruct_config(tasks_file, tmp_path / "part", max_steps=7, **same))
    part.run()
    resumed = Trainer(TrainConfig(resume=str(tmp_path / "part"), max_steps=24, explicit=("resume", "max_steps")))
    resumed.run()

    def losses(run):
        return {r["step"]: r["loss"] for r in read_metrics(run) if r["event"] == "step"}

    a, b = losses(tmp_path / "full"), losses(tmp_path / "part")
    assert 7 % 10 != 0  # 41 examples / 4 = 10 steps per epoch: step 7 is mid-epoch, and the run crosses epochs
    assert [b[s] for s in range(1, 25)] == [a[s] for s in range(1, 25)]


def test_a_changed_data_file_is_refused_on_resume(tasks_file, tmp_path):
    Trainer(instruct_config(tasks_file, tmp_path / "run", max_steps=3)).run()
    tasks_file.write_text(json.dumps(RECORDS[:-1]))
    rec = Recorder()
    trainer = Trainer(TrainConfig(resume=str(tmp_path / "run"), max_steps=6, explicit=("resume", "max_steps")))
    trainer.subscribe(rec)
    assert trainer.run().reason == "error"
    assert "split.json" in rec.of(ev.Error)[0].message and "same data" in rec.of(ev.Error)[0].message


def test_fine_tuning_starts_from_the_users_own_pretrained_run(tasks_file, tmp_path, tiny_text):
    """--init-from a GPTMini run: its weights and its (char) tokenizer; the first evaluation comes before any
    step, as the book prints the initial losses."""
    text = tmp_path / "text.txt"
    text.write_text(tiny_text.read_text() + "".join(json.dumps(r) for r in RECORDS) + PROMPT_STYLES["alpaca"].head
                    + PROMPT_STYLES["alpaca"].input_head + PROMPT_STYLES["alpaca"].response_head)
    Trainer(TrainConfig(data=[str(text)], out=str(tmp_path / "pre"), n_layers=1, n_heads=2, d_model=32,
                        context=192, batch_size=4, max_steps=4, tokenizer="char", optimizer="adamw")).run()
    rec = Recorder()
    cfg = instruct_config(tasks_file, tmp_path / "sft", init_from=str(tmp_path / "pre"), tokenizer=None,
                          n_layers=None, n_heads=None, d_model=None, max_steps=4)
    trainer = Trainer(cfg)
    trainer.subscribe(rec)
    assert trainer.run().reason == "completed", rec.of(ev.Error)
    assert rec.of(ev.Eval)[0].step == 0
    started = rec.of(ev.RunStarted)[0]
    assert started.tokenizer == "char" and started.init_from == str(tmp_path / "pre")
    assert json.loads((tmp_path / "sft" / "config.json").read_text())["init"]["kind"] == "gptmini"


@pytest.mark.parametrize("args, said", [
    (["--task", "instruct", "--data", "{text}"], "not a text corpus"),
    (["--mask-prompt", "--data", "{text}"], "--mask-prompt applies to --task instruct"),
    (["--task", "instruct", "--data", "{tasks}", "--lora-rank", "0"], "--lora-rank must be at least 1"),
    (["--task", "instruct", "--data", "{tasks}", "--template", "chatml"], "--template must be one of"),
    (["--task", "instruct", "--data", "nothing-here.json"], "not the name of a data set"),
    (["--task", "instruct", "--data", "{tasks}", "--tokenizer", "char", "--context", "64"],
     "every training example's prompt is longer than the context (64 tokens)"),
])
def test_bad_fine_tuning_options_are_one_line(tmp_path, tasks_file, tiny_text, args, said):
    args = [a.format(text=tiny_text, tasks=tasks_file) for a in args]
    out = subprocess.run([sys.executable, "-m", "gptmini", "train", *args, "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and said in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_options_of_the_instruct_task_are_refused_elsewhere():
    with pytest.raises(ConfigError, match="--template applies to --task instruct"):
        TrainConfig(template="phi3")
