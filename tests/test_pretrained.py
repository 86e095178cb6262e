"""GPT-2 in (``--init-from``) and out (``gptmini export --format hf``), checked against transformers' own
GPT-2 -- with no network: the pretrained model here is a small random GPT2LMHeadModel saved locally."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from gptmini.errors import ConfigError
from gptmini.interop.pretrained import load_model
from gptmini.sample.sampler import Sampler, SamplingSettings
from gptmini.text.tokenizer import build_tokenizer
from tests.helpers import read_metrics
from tests.test_cli import TINY, run

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.timeout(240)

PROMPT = "Every effort moves you"


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A small random GPT-2 (2 layers, 64 dims, GPT-2's vocabulary) saved the way transformers saves one."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=128, vocab_size=50257)
    model = transformers.GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("hf") / "gpt2-tiny"
    model.save_pretrained(folder)
    return folder


def hf_logits(folder, ids: torch.Tensor) -> torch.Tensor:
    model, info = transformers.GPT2LMHeadModel.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched weights
    with torch.no_grad():
        return model.eval()(ids).logits


def our_logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids)[0]


def hf_greedy(folder, ids: torch.Tensor, n: int) -> list[int]:
    model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    out = model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def our_greedy(model, tokenizer, prompt: str, n: int) -> list[int]:
    return Sampler(model, tokenizer).generate_ids(prompt, SamplingSettings(max_new_tokens=n))


def test_init_from_a_transformers_folder_gives_transformers_logits_and_greedy_text(hf_folder):
    model, cfg, _ = load_model(str(hf_folder))
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.context_length, cfg.vocab_size) == (2, 64, 2, 128, 50257)
    ids = torch.randint(0, 50257, (2, 40))
    torch.testing.assert_close(our_logits(model, ids), hf_logits(hf_folder, ids), atol=1e-5, rtol=1e-5)
    tok = build_tokenizer("gpt2")
    prompt_ids = torch.tensor([tok.encode(PROMPT)])
    assert our_greedy(model, tok, PROMPT, 30) == hf_greedy(hf_folder, prompt_ids, 30)


def test_the_bare_key_layout_of_openai_community_gpt2_loads_the_same(hf_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(hf_folder / "config.json", bare / "config.json")
    tensors = load_file(str(hf_folder / "model.safetensors"))
    save_file({k.removeprefix("transformer."): v.contiguous() for k, v in tensors.items() if k != "lm_head.weight"},
              str(bare / "model.safetensors"), metadata={"format": "pt"})
    ids = torch.randint(0, 50257, (1, 20))
    a, _, _ = load_model(str(hf_folder))
    b, _, _ = load_model(str(bare))
    assert torch.equal(our_logits(a, ids), our_logits(b, ids))


def test_the_context_may_crop_gpt2s_positions(hf_folder):
    model, cfg, _ = load_model(str(hf_folder), context=32, dropout=0.1)
    assert cfg.context_length == 32 and cfg.dropout == 0.1 and model.wpe.weight.shape[0] == 32
    ids = torch.randint(0, 50257, (1, 32))
    torch.testing.assert_close(our_logits(model, ids), hf_logits(hf_folder, ids), atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="longer than this GPT-2's 128 positions"):
        load_model(str(hf_folder), context=256)


@pytest.mark.parametrize("case", ["no config", "not gpt2", "truncated weights", "mismatched weights",
                                  "pickle only", "unknown name", "offline download"])
def test_bad_pretrained_folders_and_names_are_one_clear_error(hf_folder, tmp_path, monkeypatch, case):
    folder = tmp_path / "bad"
    shutil.copytree(hf_folder, folder)
    spec = str(folder)
    if case == "no config":
        (folder / "config.json").unlink()
        expected = "has no config.json"
    elif case == "not gpt2":
        cfg = json.loads((folder / "config.json").read_text())
        cfg["model_type"] = "llama"
        (folder / "config.json").write_text(json.dumps(cfg))
        expected = "describes a 'llama' model, not GPT-2"
    elif case == "truncated weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
        expected = "is not a valid safetensors file"
    elif case == "mismatched weights":
        cfg = json.loads((folder / "config.json").read_text())
        cfg["n_layer"] = 3
        (folder / "config.json").write_text(json.dumps(cfg))
        expected = "does not hold the weights config.json describes"
    elif case == "pickle only":
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
        expected = "a pickle, which GPTMini never loads"
    elif case == "unknown name":
        spec = "gpt5"
        expected = "neither a folder nor a GPT-2 name"
    else:
        import huggingface_hub.constants

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
        spec = "gpt2"
        expected = "could not fetch openai-community/gpt2 from the Hugging Face Hub"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match=expected) as info:
        load_model(spec)
    assert "--init-from DIR" in str(info.value) or case != "offline download"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_training_from_gpt2_is_a_new_run_that_starts_with_its_loss(hf_folder, tiny_text, tmp_path):
    run_dir = tmp_path / "run"
    out = run("train", "--init-from", str(hf_folder), "--data", str(tiny_text), "--context", "32",
              "--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "4", "--max-steps", "3",
              "--eval-interval", "3", "--device", "cpu", "--out", str(run_dir), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"started from {hf_folder}'s weights" in out.stdout
    config = json.loads((run_dir / "config.json").read_text())
    assert config["init"]["from"] == str(hf_folder) and config["train"]["init_from"] == str(hf_folder)
    assert config["model"]["d_model"] == 64 and config["model"]["context_length"] == 32
    records = read_metrics(run_dir)
    evals = [r for r in records if r["event"] == "eval"]
    assert evals[0]["step"] == 0  # the pretrained model's loss on this corpus, before any step
    started = next(r for r in records if r["event"] == "run_started")
    assert started["init_from"] == str(hf_folder) and started["start_step"] == 0
    manifest = json.loads((run_dir / "step-000003" / "manifest.json").read_text())
    assert manifest["train_config"]["init_from"] == str(hf_folder)
    sampled = run("sample", "--init-from", str(hf_folder), "--prompt", PROMPT, "--max-new-tokens", "5", cwd=tmp_path)
    assert sampled.returncode == 0 and sampled.stdout.startswith(PROMPT) and "pretrained GPT-2" in sampled.stderr


@pytest.mark.parametrize("extra, message", [
    (["--d-model", "32"], "drop --d-model 32 (it has 64)"),
    (["--tokenizer", "char"], "takes the tokenizer of the model it names"),
    (["--resume", "."], "use one of them"),
])
def test_flags_that_disagree_with_gpt2_are_refused(hf_folder, tiny_text, tmp_path, extra, message):
    out = run("train", "--init-from", str(hf_folder), "--data", str(tiny_text), "--max-steps", "1", *extra,
              "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("variant", ["gpt2 tokenizer", "char tokenizer", "untied head, no qkv bias", "no bias"])
def test_export_loads_in_transformers_with_the_same_outputs(tiny_text, tmp_path, variant):
    from gptmini.ckpt.state import load_for_inference

    run_dir, hf_dir = tmp_path / "run", tmp_path / "hf"
    flags = {"gpt2 tokenizer": ["--tokenizer", "gpt2"], "char tokenizer": ["--tokenizer", "char"],
             "untied head, no qkv bias": ["--preset", "raschka-124m", "--tokenizer", "char"],
             "no bias": ["--no-bias", "--tokenizer", "char"]}[variant]
    assert run("train", "--data", str(tiny_text), *TINY, *flags, "--max-steps", "3", "--out", str(run_dir),
               cwd=tmp_path).returncode == 0
    out = run("export", str(run_dir), "--format", "hf", "--out", str(hf_dir), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    model, tok, _ = load_for_inference(run_dir)
    assert model.config.tie_weights is (variant != "untied head, no qkv bias")
    ids = torch.tensor([tok.encode("the model reads every line")])
    torch.testing.assert_close(our_logits(model, ids), hf_logits(hf_dir, ids), atol=1e-5, rtol=1e-5)
    assert our_greedy(model, tok, "the model", 20) == hf_greedy(hf_dir, torch.tensor([tok.encode("the model")]), 20)
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    text = "The model reads every line of text.\nAnd learns."
    assert hf_tok.encode(text) == tok.encode(text) and hf_tok.decode(tok.encode(text)) == text
    if variant == "gpt2 tokenizer":  # the exported folder is a GPT-2 again: --init-from reads it back
        again, _, _ = load_model(str(hf_dir))
        torch.testing.assert_close(our_logits(again, ids), our_logits(model, ids), atol=1e-6, rtol=1e-6)


def test_export_refuses_a_folder_that_is_not_empty(tiny_text, tmp_path):
    run_dir = tmp_path / "run"
    assert run("train", "--data", str(tiny_text), *TINY, "--max-steps", "1", "--out", str(run_dir),
               cwd=tmp_path).returncode == 0
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    out = run("export", str(run_dir), "--format", "hf", "--out", str(busy), cwd=tmp_path)
    assert out.returncode == 2 and "is not an empty folder" in out.stderr
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
