"""Classification fine-tuning (the book's chapter 6): labelled data read and checked, the book's loss and
accuracy for the same weights, a run that learns and reports accuracy, `gptmini classify`, and the export
transformers loads as GPT2ForSequenceClassification."""

import csv
import io
import json
import random
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from gptmini import events as ev
from gptmini.data.batch import IGNORE_INDEX
from gptmini.data.labelled import balanced, collate_labelled, label_names, read_labelled
from gptmini.errors import ConfigError, CorpusError
from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT
from gptmini.train.engine import Trainer
from gptmini.train_config import TrainConfig
from tests.helpers import Recorder, read_metrics

PETS = "the cat sat on the mat and purred softly".split()
MONEY = "stocks fell sharply as markets reacted to news".split()


def labelled_rows(n=160, seed=1, spam_every=2):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words, label = (PETS, "pets") if i % spam_every else (MONEY, "money")
        rows.append({"text": " ".join(rng.choice(words) for _ in range(rng.randint(3, 10))), "label": label})
    return rows


@pytest.fixture
def labels_csv(tmp_path) -> Path:
    path = tmp_path / "labels.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["text", "label"])
        writer.writeheader()
        writer.writerows(labelled_rows())
    return path


@pytest.fixture
def pretrained(tmp_path) -> Path:
    """A tiny char model pre-trained on the same words (the user's own model, as the issue's benchmark has it)."""
    text = tmp_path / "words.txt"
    text.write_text("\n".join(r["text"] for r in labelled_rows(400, seed=9)))
    out = tmp_path / "pre"
    Trainer(TrainConfig(data=[str(text)], out=str(out), tokenizer="char", n_layers=1, n_heads=2, d_model=32,
                        context=48, batch_size=8, max_steps=30, optimizer="adamw", lr=3e-3)).run()
    return out


def classify_config(data: Path, pretrained: Path, out: Path, **kw) -> TrainConfig:
    opts = dict(task="classify", data=[str(data)], init_from=str(pretrained), out=str(out), max_steps=60,
                eval_interval=30, eval_batches=4, lr=5e-3, seed=4)
    opts.update(kw)
    return TrainConfig(**opts)


# ------------------------------------------------------------------ reading
def test_csv_tsv_without_header_and_jsonl_are_read(tmp_path, labels_csv):
    rows = read_labelled(labels_csv, "text", "label")
    assert len(rows) == 160 and label_names(rows, "x") == ["money", "pets"]
    sms = tmp_path / "SMSSpamCollection.tsv"
    sms.write_text('ham\tGo until jurong point\nspam\tWINNER!! "free" prize\nham\tOk lar...\n')
    rows = read_labelled(sms, "1", "0")
    assert [(r.label, r.text) for r in rows][1] == ("spam", 'WINNER!! "free" prize')
    jl = tmp_path / "reviews.jsonl"
    jl.write_text('{"review": "great", "stars": 5}\n{"review": "bad", "stars": 1}\n')
    assert [(r.text, r.label) for r in read_labelled(jl, "review", "stars")] == [("great", "5"), ("bad", "1")]


@pytest.mark.parametrize("name, content, columns, said", [
    ("a.csv", "text,label\nhi,a\n", ("review", "label"), "has no column 'review' (its columns: text, label)"),
    ("a.csv", "text,label\nhi,a\nthere,b,extra\n", ("text", "label"), "line 3: 3 fields where the file has 2"),
    ("a.jsonl", '{"text": 3, "label": "a"}\n', ("text", "label"), "line 1: 'text' is int, not text"),
    ("a.jsonl", '{"text": "x"}\n', ("text", "label"), "line 1 has no field 'label'"),
    ("a.csv", "text,label\n", ("text", "label"), "holds no rows"),
])
def test_bad_labelled_data_is_one_line_naming_the_place(tmp_path, name, content, columns, said):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CorpusError) as info:
        read_labelled(path, *columns)
    assert said in str(info.value) and "\n" not in str(info.value)


def test_one_class_is_refused_and_balance_undersamples_to_the_rarest():
    rows = read_labelled_rows(labelled_rows(120, spam_every=4))  # 30 money, 90 pets
    with pytest.raises(CorpusError, match="a classifier needs at least two"):
        label_names([r for r in rows if r.label == "pets"], "x")
    kept = balanced(rows, seed=3)
    assert Counter(r.label for r in kept) == {"money": 30, "pets": 30}
    assert kept == balanced(rows, seed=3) and kept != balanced(rows, seed=4)


def read_labelled_rows(rows):
    from gptmini.data.labelled import LabelledText

    return [LabelledText(r["text"], r["label"], i, r) for i, r in enumerate(rows)]


def test_a_text_is_encoded_as_the_classifier_reads_it():
    from gptmini.errors import TokenizerError
    from gptmini.tasks.classify import encode_text
    from gptmini.text.tokenizer import build_tokenizer

    tok = build_tokenizer("char", "the cat")
    assert encode_text(tok, "cat", pad_id=7).tolist() == tok.encode("cat")
    assert encode_text(tok, "", pad_id=7).tolist() == [7]  # an empty text is one pad token, never no token
    with pytest.raises(TokenizerError):
        encode_text(tok, "dog", pad_id=7)  # a character the run never saw


def test_the_label_sits_on_the_last_real_token_and_padding_never_counts():
    x, y, n = collate_labelled([np.array([1, 2, 3]), np.array([4])], [1, 0], pad_id=9)
    assert x.tolist() == [[1, 2, 3], [4, 9, 9]]
    assert y.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 1], [0, IGNORE_INDEX, IGNORE_INDEX]] and n == 4
    # causal attention: what follows a text's last token (its padding) cannot change its logits
    model = GPT(ModelConfig(vocab_size=10, context_length=8, n_layers=1, n_heads=2, d_model=16, n_classes=2)).eval()
    alone, _ = model(torch.tensor([[4]]))
    padded, _ = model(x)
    assert torch.allclose(alone[0, 0], padded[1, 0], atol=1e-6)


def test_same_loss_and_accuracy_as_the_books_code_for_the_same_weights():
    ch04 = pytest.importorskip("llms_from_scratch.ch04")
    ch06 = pytest.importorskip("llms_from_scratch.ch06")
    from gptmini.interop.book import to_book

    torch.manual_seed(0)
    ours = GPT(ModelConfig(vocab_size=300, context_length=16, n_layers=2, n_heads=2, d_model=32, n_classes=2)).eval()
    book = to_book(ours, ch04.GPTModel).eval()
    book.out_head = torch.nn.Linear(32, 2)  # the book's new head; the same weights, its bias zero
    with torch.no_grad():
        book.out_head.weight.copy_(ours.score.weight)
        book.out_head.bias.zero_()
    x = torch.randint(0, 300, (6, 10))
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    y = torch.full_like(x, IGNORE_INDEX)
    y[:, -1] = labels  # equal lengths: the book's last position is every text's last real token
    with torch.no_grad():
        _, loss = ours(x, y)
        book_loss = ch06.calc_loss_batch(x, labels, book, "cpu")
    assert loss.item() == pytest.approx(book_loss.item(), abs=1e-5)
    from gptmini.data.batch import Batch
    from gptmini.tasks.classify import loss_and_accuracy
    from gptmini.train.device import choose_precision

    _, accuracy = loss_and_accuracy(ours, [Batch(x, y, 60)], torch.device("cpu"),
                                    choose_precision(torch.device("cpu"), "float32"))
    assert accuracy == pytest.approx(ch06.calc_accuracy_loader([(x, labels)], book, "cpu"))


# ------------------------------------------------------------------ training
def test_a_classifier_learns_reports_accuracy_and_saves_what_trains(labels_csv, pretrained, tmp_path):
    rec = Recorder()
    trainer = Trainer(classify_config(labels_csv, pretrained, tmp_path / "cls"))
    trainer.subscribe(rec)
    finished = trainer.run()
    assert finished.reason == "completed", rec.of(ev.Error)
    evals = rec.of(ev.Eval)
    assert evals[0].step == 0  # the accuracy before any step (the book's ~46 %)
    assert evals[-1].metrics["val_accuracy"] >= 0.9 and evals[-1].metrics["train_accuracy"] >= 0.9
    assert finished.metrics["test_accuracy"] >= 0.9
    started = rec.of(ev.RunStarted)[0]
    assert started.task == "classify" and started.trainable_params < started.n_params
    rows = read_metrics(tmp_path / "cls")
    assert {"val_accuracy", "train_accuracy"} <= set(next(r for r in rows if r["event"] == "eval"))
    assert 0 <= next(r for r in rows if r["event"] == "finished")["test_accuracy"] <= 1
    samples = rec.of(ev.Sample)
    assert samples and all(s.reference in ("pets", "money") and s.text.split()[0] in ("pets", "money")
                           for s in samples)
    manifest = json.loads(next((tmp_path / "cls").glob("step-*/manifest.json")).read_text())
    assert manifest["task"]["labels"] == ["money", "pets"] and manifest["base"]["kind"] == "gptmini"
    from safetensors import safe_open

    with safe_open(str(next((tmp_path / "cls").glob("step-*/model.safetensors"))), "pt") as fh:
        assert sorted({k.split(".")[0] for k in fh.keys()}) == ["h", "ln_f", "score"]  # the last block, norm, head

    out = subprocess.run([sys.executable, "-m", "gptmini", "classify", "--checkpoint", str(tmp_path / "cls"),
                          "the cat sat on the mat", "stocks fell sharply"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first.startswith("pets\t") and second.startswith("money\t") and "pets 0." in first


def test_a_classifier_resumes_exactly(labels_csv, pretrained, tmp_path):
    same = dict(warmup_steps=2, lr_decay_steps=30, train_layers="all")
    Trainer(classify_config(labels_csv, pretrained, tmp_path / "full", max_steps=30, **same)).run()
    Trainer(classify_config(labels_csv, pretrained, tmp_path / "part", max_steps=9, **same)).run()
    Trainer(TrainConfig(resume=str(tmp_path / "part"), max_steps=30, explicit=("resume", "max_steps"))).run()

    def losses(run):
        return {r["step"]: r["loss"] for r in read_metrics(run) if r["event"] == "step"}

    assert losses(tmp_path / "part") == losses(tmp_path / "full")


def test_the_hf_export_is_a_gpt2_sequence_classifier_with_the_same_logits(labels_csv, tmp_path):
    transformers = pytest.importorskip("transformers")
    Trainer(TrainConfig(task="classify", data=[str(labels_csv)], out=str(tmp_path / "cls"), tokenizer="gpt2",
                        n_layers=1, n_heads=2, d_model=32, context=32, max_steps=3, batch_size=8,
                        train_layers="all")).run()
    out = subprocess.run([sys.executable, "-m", "gptmini", "export", str(tmp_path / "cls"), "--format", "hf",
                          "--out", str(tmp_path / "hf")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    hf = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.id2label == {0: "money", 1: "pets"}
    from gptmini.ckpt.state import load_for_inference
    from gptmini.tasks.classify import predict

    ours, tok, _ = load_for_inference(tmp_path / "cls")
    texts = ["the cat sat", "stocks fell sharply as markets reacted"]
    ids = [tok.encode(t) for t in texts]
    width = max(map(len, ids))
    batch = torch.tensor([t + [50256] * (width - len(t)) for t in ids])
    with torch.no_grad():
        theirs = torch.softmax(hf(batch).logits, -1)
    mine = predict(ours, [np.array(t) for t in ids], pad_id=50256)
    assert torch.allclose(theirs, mine, atol=1e-5)


# ------------------------------------------------------------------ the named data set
def sms_zip(rows: list[tuple[str, str]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("SMSSpamCollection", "".join(f"{label}\t{text}\n" for label, text in rows))
        zf.writestr("readme", "the collection")
    return buf.getvalue()


class Opener:
    def __init__(self, payload=b"", error=None):
        self.payload, self.error = payload, error

    def __call__(self, url, timeout):
        if self.error:
            raise self.error
        return io.BytesIO(self.payload)


def test_sms_spam_is_fetched_once_and_checked_by_its_content(tmp_path, monkeypatch):
    import urllib.error

    from gptmini.data.named import fetch_named_data

    monkeypatch.setenv("GPTMINI_CACHE_DIR", str(tmp_path / "cache"))
    real = [("ham", f"hello {i}") for i in range(4825)] + [("spam", f"WIN {i}") for i in range(747)]
    path = fetch_named_data("sms-spam", kind="labelled", url_opener=Opener(sms_zip(real)))
    assert len(read_labelled(path, "1", "0")) == 5572
    assert fetch_named_data("sms-spam", kind="labelled", url_opener=Opener(error=AssertionError())) == path
    path.unlink()
    (tmp_path / "cache" / "datasets" / "sms+spam+collection.zip").unlink()
    with pytest.raises(CorpusError, match="not the sms-spam data set"):
        fetch_named_data("sms-spam", kind="labelled", url_opener=Opener(sms_zip(real[:10])))
    (tmp_path / "cache" / "datasets" / "sms+spam+collection.zip").unlink()
    with pytest.raises(CorpusError, match="probably offline .* pass it with --data PATH"):
        fetch_named_data("sms-spam", kind="labelled", url_opener=Opener(error=urllib.error.URLError("no DNS")))


@pytest.mark.parametrize("args, said", [
    (["--task", "classify", "--data", "{text}"], "not a text corpus"),
    (["--task", "classify", "--data", "{labels}", "--label-column", "stars"], "has no column 'stars'"),
    (["--balance", "--data", "{text}"], "--balance applies to --task classify"),
])
def test_bad_classification_options_are_one_line(tmp_path, labels_csv, tiny_text, args, said):
    args = [a.format(text=tiny_text, labels=labels_csv) for a in args]
    out = subprocess.run([sys.executable, "-m", "gptmini", "train", *args, "--out", str(tmp_path / "r"),
                          "--tokenizer", "char"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and said in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_classify_refuses_a_checkpoint_of_another_task(tmp_path, pretrained):
    out = subprocess.run([sys.executable, "-m", "gptmini", "classify", "--checkpoint", str(pretrained), "hi"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "is a pretrain checkpoint; gptmini classify needs a classifier" in out.stderr


def test_classification_options_are_refused_for_other_tasks():
    with pytest.raises(ConfigError, match="--train-layers applies to --task classify"):
        TrainConfig(train_layers="all")
