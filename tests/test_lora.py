"""LoRA as the book's appendix E: the same parameter count, the same outputs as its code for the same weights,
a frozen base, adapters-only checkpoints that name their base by hash, and an exact resume."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from gptmini import events as ev
from gptmini.errors import ConfigError
from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT
from gptmini.model.lora import LoRAConfig, apply_lora, count_trainable, merged_state
from gptmini.train.engine import Trainer
from gptmini.train_config import TrainConfig
from tests.helpers import Recorder, read_metrics

MEDIUM = dict(vocab_size=50257, context_length=1024, n_layers=24, n_heads=16, d_model=1024)


def test_the_books_choice_trains_exactly_the_books_number_of_parameters():
    with torch.device("meta"):
        model = GPT(ModelConfig(**MEDIUM, tie_weights=False))
    base = model.num_params()
    apply_lora(model, LoRAConfig(rank=16, alpha=16, targets="all"))
    assert base == 406_286_336  # the book's gpt2-medium (its head untied)
    assert count_trainable(model) == 7_898_384  # its LoRA parameters (q, k, v adapted separately)
    assert model.num_params() == base + 7_898_384


@pytest.mark.parametrize("targets, layers", [("attn", 2), ("mlp", 2), ("all", 4)])
def test_targets_pick_the_layers(targets, layers):
    model = apply_lora(GPT(ModelConfig(vocab_size=64, context_length=8, n_layers=2, n_heads=2, d_model=16)),
                       LoRAConfig(2, 1.0, targets))
    adapted = {n.rsplit(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad}
    assert len([n for n in adapted if n.startswith("h.0.")]) == layers
    assert ("head_lora" in adapted) == (targets == "all")
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora" not in n)


def test_same_outputs_as_the_books_lora_for_the_same_weights():
    ch04 = pytest.importorskip("llms_from_scratch.ch04")
    appendix_e = pytest.importorskip("llms_from_scratch.appendix_e")
    from gptmini.interop.book import to_book

    torch.manual_seed(0)
    ours = GPT(ModelConfig(vocab_size=500, context_length=16, n_layers=2, n_heads=2, d_model=32)).eval()
    book = to_book(ours, ch04.GPTModel).eval()
    apply_lora(ours, LoRAConfig(rank=4, alpha=3.0, targets="all"))
    appendix_e.replace_linear_with_lora(book, rank=4, alpha=3.0)
    for p in ours.parameters():
        if p.requires_grad:
            p.data.normal_(0, 0.2)
    with torch.no_grad():
        for blk, rb in zip(ours.h, book.trf_blocks):
            for s, part in enumerate((rb.att.W_query, rb.att.W_key, rb.att.W_value)):
                part.lora.A.copy_(blk.attn.c_attn.lora_A[s])
                part.lora.B.copy_(blk.attn.c_attn.lora_B[s])
            for mine, theirs in ((blk.attn.c_proj, rb.att.out_proj), (blk.mlp.c_fc, rb.ff.layers[0]),
                                 (blk.mlp.c_proj, rb.ff.layers[2])):
                theirs.lora.A.copy_(mine.lora_A[0])
                theirs.lora.B.copy_(mine.lora_B[0])
        book.out_head.lora.A.copy_(ours.head_lora.lora_A[0])
        book.out_head.lora.B.copy_(ours.head_lora.lora_B[0, :, :500])
        x = torch.randint(0, 500, (2, 12))
        assert torch.allclose(ours(x)[0], book(x), atol=1e-5)


def test_adapters_start_at_zero_and_merge_into_plain_weights():
    torch.manual_seed(1)
    model = GPT(ModelConfig(vocab_size=100, context_length=16, n_layers=2, n_heads=2, d_model=16)).eval()
    x = torch.randint(0, 100, (2, 8))
    before = model(x)[0]
    apply_lora(model, LoRAConfig(4, 2.0, "all"))
    assert torch.equal(model(x)[0], before)  # B = 0: training starts from the base model exactly
    for p in model.parameters():
        if p.requires_grad:
            p.data.normal_(0, 0.1)
    state, untied = merged_state(model)
    plain = GPT(model.config.with_overrides(tie_weights=False)).eval()
    plain.load_state_dict(state)
    assert untied and torch.allclose(plain(x)[0], model(x)[0], atol=1e-5)


@pytest.fixture
def pretrained(tmp_path, tiny_text):
    out = tmp_path / "pre"
    Trainer(TrainConfig(data=[str(tiny_text)], out=str(out), n_layers=1, n_heads=2, d_model=32, context=32,
                        batch_size=4, max_steps=3, optimizer="adamw", tokenizer="char")).run()
    return out


def lora_config(tiny_text, pretrained, out, **kw):
    opts = dict(data=[str(tiny_text)], out=str(out), init_from=str(pretrained), lora_rank=4, batch_size=4,
                max_steps=12, eval_interval=6, eval_batches=2, sample_tokens=4, dropout=0.1, warmup_steps=2,
                lr_decay_steps=12, lr=3e-3, seed=3)
    opts.update(kw)
    return TrainConfig(**opts)


def test_a_lora_run_trains_only_adapters_and_saves_them_alone(tiny_text, pretrained, tmp_path):
    rec = Recorder()
    trainer = Trainer(lora_config(tiny_text, pretrained, tmp_path / "lora"))
    trainer.subscribe(rec)
    assert trainer.run().reason == "completed", rec.of(ev.Error)
    started = rec.of(ev.RunStarted)[0]
    assert 0 < started.trainable_params < started.n_params
    steps = rec.of(ev.Step)
    assert steps[-1].loss < steps[0].loss
    ckpt = tmp_path / "lora" / "latest"
    folder = tmp_path / "lora" / ckpt.read_text().strip()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["lora"] == {"rank": 4, "alpha": 16.0, "targets": "all"}
    assert manifest["base"]["kind"] == "gptmini" and len(manifest["base"]["sha256"]) == 64
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as fh:
        assert fh.keys() and all("lora" in k for k in fh.keys())
    out = subprocess.run([sys.executable, "-m", "gptmini", "sample", "--checkpoint", str(tmp_path / "lora"),
                          "--prompt", "The ", "--max-new-tokens", "8"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("The "), out.stderr


def test_a_lora_run_resumes_exactly_and_refuses_another_base(tiny_text, pretrained, tmp_path):
    Trainer(lora_config(tiny_text, pretrained, tmp_path / "full")).run()
    Trainer(lora_config(tiny_text, pretrained, tmp_path / "part", max_steps=5)).run()
    Trainer(TrainConfig(resume=str(tmp_path / "part"), max_steps=12, explicit=("resume", "max_steps"))).run()

    def losses(run):
        return {r["step"]: r["loss"] for r in read_metrics(run) if r["event"] == "step"}

    assert losses(tmp_path / "part") == losses(tmp_path / "full")

    # the base was the pre-trained run's step 3; it trains on (its latest is now step 4) and step 3 is deleted
    manifest = json.loads(next((tmp_path / "part").glob("step-*/manifest.json")).read_text())
    Trainer(TrainConfig(resume=str(pretrained), max_steps=4, explicit=("resume", "max_steps"))).run()
    shutil.rmtree(pretrained / "step-000003")
    rec = Recorder()
    trainer = Trainer(TrainConfig(resume=str(tmp_path / "part"), max_steps=14, explicit=("resume", "max_steps")))
    trainer.subscribe(rec)
    assert trainer.run().reason == "error"
    assert "a different model" in rec.of(ev.Error)[0].message and manifest["base"]["sha256"][:12] in \
        rec.of(ev.Error)[0].message


def test_muon_and_lora_do_not_mix():
    with pytest.raises(ConfigError, match="use --optimizer adamw with --lora-rank"):
        TrainConfig(lora_rank=4, optimizer="muon")


@pytest.mark.parametrize("targets", ["all", "attn"])
def test_the_peft_adapter_loads_onto_the_exported_base_with_the_same_logits(tiny_text, pretrained, tmp_path, targets):
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    Trainer(lora_config(tiny_text, pretrained, tmp_path / "lora", lora_targets=targets, dropout=0.0)).run()

    def export(*args):
        out = subprocess.run([sys.executable, "-m", "gptmini", "export", *args], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr

    export(str(pretrained), "--format", "hf", "--out", str(tmp_path / "base"))
    export(str(tmp_path / "lora"), "--format", "peft", "--out", str(tmp_path / "adapter"))
    from gptmini.ckpt.state import load_for_inference

    ours, _, _ = load_for_inference(tmp_path / "lora")
    x = torch.randint(0, ours.config.vocab_size, (2, 20))
    base = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "base").eval()
    with torch.no_grad():
        mine, plain = ours(x)[0], base(x).logits
        assert not torch.allclose(mine, plain, atol=1e-3)  # the adapters change the outputs
        theirs = peft.PeftModel.from_pretrained(base, tmp_path / "adapter").eval()  # (adds them to base in place)
        assert torch.allclose(theirs(x).logits, mine, atol=1e-5)
    merged = tmp_path / "merged"
    export(str(tmp_path / "lora"), "--format", "hf", "--out", str(merged))  # LoRA merged: the same model
    with torch.no_grad():
        assert torch.allclose(transformers.AutoModelForCausalLM.from_pretrained(merged)(x).logits, mine, atol=1e-5)


def test_peft_export_of_a_run_without_lora_is_one_line(pretrained, tmp_path):
    out = subprocess.run([sys.executable, "-m", "gptmini", "export", str(pretrained), "--format", "peft", "--out",
                          str(tmp_path / "a")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "has no LoRA adapters" in out.stderr and out.stderr.count("\n") == 1
