"""``gptmini export --format gguf``: the file holds GPT-2 under llama.cpp's names, checked two ways.

* Everywhere (the ``gguf`` package is a test dependency): a plain numpy GPT-2 forward that reads the file by
  llama.cpp's tensor names gives GPTMini's logits, and every weight is the original rounded to the dtype.
* Where llama-cpp-python imports: llama.cpp tokenises like GPTMini, its logits agree and 32 greedy tokens
  are the same.

Tolerances, relative to the largest |logit| of the prompt (``_close``), measured on 24 models (3 seeds of
tied/untied/char/no-bias/d 48, random and trained) and set about 3-4x above the worst case seen:

numpy over the file   f32: 1e-5 absolute (measured 5e-6: float64 numpy vs float32 torch)
                      f16 2e-3 (5e-4), bf16 1.6e-2 (4.3e-3), q8_0 4e-2 (1.5e-2): weights rounded to
                      2^-11 (f16), 2^-8 (bf16) relative, and q8_0 to half a step of 1/127 of each 32-block's
                      largest value, move the logits by about that fraction of their size
llama.cpp             f32 1.5e-3 (3.6e-4), f16 2.5e-3 (6.3e-4), bf16 2e-2 (4.7e-3), q8_0 6e-2 (1.7e-2):
                      on top of the weights' rounding, ggml evaluates the tanh GELU through a float16 table
                      (1.9e-4: a numpy forward with that table gives the same figure) and keeps the KV
                      cache in float16 (+0.5e-4); f16/bf16/q8_0 matmuls also round the activations

A layout mistake (a transposed matrix, q/k/v in the wrong order, a bias under the wrong name) moves the
logits by their own size, two orders of magnitude above every tolerance here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gptmini.cli import main
from gptmini.interop.gguf import export_gguf, write_gguf
from gptmini.interop.modelfile import ollama_template
from gptmini.model.config import ModelConfig
from gptmini.text.tokenizer import CharTokenizer, GPT2Tokenizer
from tests.gguf_helpers import distinct_model, numpy_gpt2, our_logits, read_gguf, save_run, trained_model

gguf = pytest.importorskip("gguf")

NUMPY_TOL = {"f16": 2e-3, "bf16": 1.6e-2, "q8_0": 4e-2}
LLAMA_TOL = {"f32": 1.5e-3, "f16": 2.5e-3, "bf16": 2e-2, "q8_0": 6e-2}
TEXT = "The model reads every line of text.\nAnd learns which letter comes next, so that after a while it writes."
CHAR_EXTRA = "é✓\\\t"  # a char vocabulary with non-ASCII characters, a backslash and a control character
VARIANTS = {  # name: (tokenizer, ModelConfig fields beyond the tiny shape)
    "gpt2, tied, biases": ("gpt2", {}),
    "gpt2, untied head, no qkv bias": ("gpt2", {"tie_weights": False, "qkv_bias": False}),
    "char, no bias, d 48": ("char", {"bias": False, "qkv_bias": False, "d_model": 48}),
}


def tokenizer(name: str):
    return GPT2Tokenizer() if name == "gpt2" else CharTokenizer.from_text(TEXT + CHAR_EXTRA)


def tiny_config(tok, **fields) -> ModelConfig:
    shape = {"vocab_size": tok.vocab_size, "context_length": 64, "n_layers": 2, "n_heads": 2, "d_model": 32}
    return ModelConfig(**{**shape, **fields})


def _close(theirs: np.ndarray, ours: np.ndarray, rel: float) -> None:
    scale = np.abs(ours).max()
    worst = np.abs(theirs - ours).max()
    assert worst <= rel * scale, f"logits differ by {worst:.3g} = {worst / scale:.3g} of their size (allowed {rel})"


# ------------------------------------------------------------------ the file, read back with numpy
@pytest.mark.parametrize("variant, dtype", [  # every dtype, and every variant (their layouts) at f32 and q8_0
    *((variant, dtype) for variant in VARIANTS for dtype in ("f32", "q8_0")),
    *((variant, dtype) for variant in ("gpt2, tied, biases", "char, no bias, d 48") for dtype in ("f16", "bf16")),
])
def test_numpy_gpt2_over_llama_cpp_names_gives_gptmini_logits(tmp_path, variant, dtype):
    tok_name, fields = VARIANTS[variant]
    tok = tokenizer(tok_name)
    cfg = tiny_config(tok, **fields)
    model = distinct_model(cfg)
    path = tmp_path / "model.gguf"
    written = write_gguf(model.state_dict(), cfg, tok, path, dtype=dtype)
    ids = tok.encode(TEXT)[:64]
    ours = our_logits(model, ids)
    meta, tensors, types = read_gguf(path)
    theirs = numpy_gpt2(meta, tensors, ids)
    assert theirs.shape == (len(ids), tok.vocab_size)  # padding rows gone (gpt2: 50304 -> 50257)
    if dtype == "f32":
        np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=0)
    else:
        _close(theirs, ours, NUMPY_TOL[dtype])

    assert {k: meta[k] for k in ("general.architecture", "gpt2.block_count", "gpt2.context_length",
                                 "gpt2.embedding_length", "gpt2.feed_forward_length", "gpt2.attention.head_count")} \
        == {"general.architecture": "gpt2", "gpt2.block_count": 2, "gpt2.context_length": 64,
            "gpt2.embedding_length": cfg.d_model, "gpt2.feed_forward_length": 4 * cfg.d_model,
            "gpt2.attention.head_count": 2}
    assert meta["gpt2.attention.layer_norm_epsilon"] == pytest.approx(1e-5)
    assert ("output.weight" in tensors) is (not cfg.tie_weights)
    assert tensors["token_embd.weight"].shape == (tok.vocab_size, cfg.d_model)
    assert len(meta["tokenizer.ggml.tokens"]) == tok.vocab_size
    no_bias = sorted(name for name in tensors if name.endswith(".bias") and not tensors[name].any())
    assert no_bias == sorted(written.zero_biases)  # the zeros are exactly the biases the model lacks
    assert len(no_bias) == (0 if cfg.bias and cfg.qkv_bias else 2 if cfg.bias else 6 * 2 + 1)
    state = model.state_dict()
    _check_rounding(tensors["blk.1.ffn_up.weight"], state["h.1.mlp.c_fc.weight"], types["blk.1.ffn_up.weight"])
    _check_rounding(tensors["token_embd.weight"], state["wte.weight"][: tok.vocab_size], types["token_embd.weight"])
    assert types["blk.0.attn_norm.weight"] == types["blk.0.attn_qkv.bias"] == "F32"
    if dtype == "q8_0":  # rows of 48 values are not whole q8_0 blocks: those matrices stay f16
        kept = {n for n, t in types.items() if t == "F16"}
        assert kept == set(written.kept_f16) and bool(kept) is (cfg.d_model % 32 != 0)


def _check_rounding(stored: np.ndarray, weight: torch.Tensor, qtype: str) -> None:
    """The file holds exactly the weight rounded to its type (q8_0: within its block's rounding step)."""
    w = weight.double().numpy()
    if qtype in ("F32", "F16"):
        expected = w.astype(np.float32 if qtype == "F32" else np.float16).astype(np.float64)
        np.testing.assert_array_equal(stored, expected)
    elif qtype == "BF16":
        np.testing.assert_array_equal(stored, weight.to(torch.bfloat16).double().numpy())
    else:
        assert qtype == "Q8_0"
        step = np.abs(w.reshape(-1, 32)).max(axis=1, keepdims=True) / 127  # per block of 32 values
        # half a step, plus the block scale's own float16 rounding (2^-11 of up to 127 steps)
        assert (np.abs(stored.reshape(-1, 32) - w.reshape(-1, 32)) <= 0.57 * step + 1e-12).all()


# ------------------------------------------------------------------ llama.cpp itself
TOKENIZE = ["Every effort moves you", "  leading and trailing spaces   ", "tabs\tand\nnew lines\n\n\n",
            "it's they're we'll I'd DON'T", "numbers 12345 3.14 1,000,000", "héllo wörld 日本語 😀 ✓",
            "<|endoftext|>Next document<|endoftext|>", "multiple     spaces  \n  \t x", "\r\n windows\r\n", ""]


@pytest.fixture(scope="module")
def llama_cpp():
    return pytest.importorskip("llama_cpp")


def _llama(llama_cpp, path, cfg: ModelConfig):
    return llama_cpp.Llama(str(path), n_ctx=cfg.context_length, logits_all=True, verbose=False, n_threads=1)


def _llama_logits(llm, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float64)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_llama_cpp_tokenises_computes_and_generates_like_gptmini(tmp_path, llama_cpp, variant):
    from gptmini.sample.sampler import Sampler, SamplingSettings

    tok_name, fields = VARIANTS[variant]
    tok = tokenizer(tok_name)
    cfg = tiny_config(tok, **fields)
    model = trained_model(cfg, tok.encode(TEXT * 4), steps=25)
    path = tmp_path / "model.gguf"
    write_gguf(model.state_dict(), cfg, tok, path)
    llm = _llama(llama_cpp, path, cfg)

    texts = TOKENIZE if tok_name == "gpt2" else [TEXT, TEXT[::-1], CHAR_EXTRA + " \\xea é\\n"]
    for text in texts:
        ids = tok.encode(text)
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids, text
        assert llm.detokenize(ids, special=True).decode() == text

    prompt = "The model"
    ids = tok.encode(prompt)
    ours = Sampler(model, tok).generate_ids(prompt, SamplingSettings(max_new_tokens=32))
    assert len(ours) == 32
    path_ids = ids + ours
    logits = our_logits(model, path_ids)
    theirs = _llama_logits(llm, path_ids)
    _close(theirs, logits, LLAMA_TOL["f32"])
    # every greedy step is decided by more than twice the difference measured: llama.cpp's choices cannot
    # flip on rounding, so a different token would be a real difference (e.g. in its incremental KV-cache path)
    top2 = np.sort(logits[len(ids) - 1 : -1], axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0]).min() > 2 * np.abs(theirs - logits).max()
    llm.reset()
    theirs = []
    for token in llm.generate(ids, temp=0.0, top_k=1):
        theirs.append(token)
        if len(theirs) == 32:
            break
    assert theirs == ours, (tok.decode(theirs), tok.decode(ours))


@pytest.mark.parametrize("dtype", ["f16", "bf16", "q8_0"])
def test_llama_cpp_logits_for_each_dtype(tmp_path, llama_cpp, dtype):
    tok = GPT2Tokenizer()
    cfg = tiny_config(tok)
    model = distinct_model(cfg, seed=1)
    path = tmp_path / f"model-{dtype}.gguf"
    write_gguf(model.state_dict(), cfg, tok, path, dtype=dtype)
    ids = tok.encode(TEXT)
    _close(_llama_logits(_llama(llama_cpp, path, cfg), ids), our_logits(model, ids), LLAMA_TOL[dtype])


# ------------------------------------------------------------------ the command line
def cli(capsys, *args) -> tuple[int, str, str]:
    try:
        rc = main(list(args))
    except SystemExit as exc:  # argparse's own refusals
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def char_run(tmp_path):
    tok = tokenizer("char")
    cfg = tiny_config(tok, n_layers=1, bias=False, qkv_bias=False)
    return save_run(tmp_path / "run", distinct_model(cfg).state_dict(), cfg, tok)


def test_export_writes_gguf_and_modelfile_and_overwrites_only_with_force(tmp_path, char_run, capsys):
    out = tmp_path / "out" / "model.gguf"
    rc, stdout, err = cli(capsys, "export", str(char_run), "--format", "gguf", "--out", str(out), "--ollama")
    assert rc == 0, err
    assert f"wrote {out}" in stdout and "7 biases the model does not have written as zeros" in stdout
    modelfile = (out.parent / "Modelfile").read_text()
    assert "FROM ./model.gguf\n" in modelfile and 'TEMPLATE """{{ .Prompt }}"""' in modelfile
    assert "PARAMETER num_ctx 64" in modelfile and "PARAMETER stop" not in modelfile  # char: no end-of-text
    before = out.read_bytes()

    rc, _, err = cli(capsys, "export", str(char_run), "--format", "gguf", "--out", str(out), "--dtype", "f16")
    assert rc == 2 and err == f"error: {out} exists; pass --force to overwrite it\n"
    assert out.read_bytes() == before
    rc, _, err = cli(capsys, "export", str(char_run), "--format", "gguf", "--out", str(out), "--dtype", "f16",
                     "--force")
    assert rc == 0, err
    assert out.stat().st_size < len(before)  # f16 matrices
    assert sorted(p.name for p in out.parent.iterdir()) == ["Modelfile", "model.gguf"]  # no temporary left


def test_the_output_path_is_checked_before_the_checkpoint_is_read(tmp_path, capsys):
    out = tmp_path / "model.gguf"
    out.write_bytes(b"mine")
    rc, _, err = cli(capsys, "export", str(tmp_path / "no-such-run"), "--format", "gguf", "--out", str(out))
    assert rc == 2 and "exists; pass --force" in err and out.read_bytes() == b"mine"
    (tmp_path / "Modelfile").write_text("mine")
    rc, _, err = cli(capsys, "export", str(tmp_path / "no-such-run"), "--format", "gguf", "--out",
                     str(tmp_path / "new.gguf"), "--ollama")
    assert rc == 2 and err == f"error: {tmp_path / 'Modelfile'} exists; pass --force to overwrite it\n"


@pytest.mark.parametrize("case, message", [
    ("unwritable", "cannot write"),
    ("not .gguf", "--out must end in .gguf"),
    ("unknown dtype", "argument --dtype: invalid choice: 'q4'"),
    ("dtype for weights", "--dtype applies only to --format gguf"),
    ("classifier task", "is a classify checkpoint; llama.cpp runs language models only (pretrain or instruct)"),
    ("class head", "lm_head.weight has shape (3, 32), the model needs (28, 32)"),
])
def test_bad_input_is_refused_in_one_line(tmp_path, char_run, capsys, case, message):
    tok = tokenizer("char")
    run, out, extra = char_run, tmp_path / "model.gguf", []
    if case == "unwritable":
        (tmp_path / "file").write_text("a file, not a folder")
        out = tmp_path / "file" / "model.gguf"
    elif case == "not .gguf":
        out = tmp_path / "model.bin"
    elif case == "unknown dtype":
        extra = ["--dtype", "q4"]
    elif case == "dtype for weights":
        extra, out = ["--dtype", "f16"], tmp_path / "w.safetensors"
    elif case == "classifier task":
        cfg = tiny_config(tok, n_layers=1, n_classes=2)
        run = save_run(tmp_path / "cls", distinct_model(cfg).state_dict(), cfg, tok,
                       task={"name": "classify", "labels": ["no", "yes"]})
    elif case == "class head":  # a 3-class head where the vocabulary head should be
        cfg = tiny_config(tok, n_layers=1, tie_weights=False)
        state = distinct_model(cfg).state_dict()
        state["lm_head.weight"] = state["lm_head.weight"][:3].clone()
        run = save_run(tmp_path / "cls", state, cfg, tok)
    fmt = "weights" if case == "dtype for weights" else "gguf"
    rc, stdout, err = cli(capsys, "export", str(run), "--format", fmt, "--out", str(out), *extra)
    assert rc == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not out.exists() and not any(".tmp-" in p.name for p in tmp_path.rglob("*"))


def test_a_trained_run_exports_through_the_installed_command(tiny_text, tmp_path):
    from gptmini.ckpt.state import load_for_inference
    from tests.test_cli import TINY, run

    run_dir, out = tmp_path / "run", tmp_path / "run.gguf"
    trained = run("train", "--data", str(tiny_text), *TINY, "--tokenizer", "char", "--max-steps", "3",
                  "--out", str(run_dir), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    exported = run("export", str(run_dir), "--format", "gguf", "--out", str(out), "--dtype", "bf16", cwd=tmp_path)
    assert exported.returncode == 0 and f"wrote {out}" in exported.stdout, exported.stderr
    model, tok, _ = load_for_inference(run_dir)
    ids = tok.encode("The model reads every line")
    meta, tensors, _ = read_gguf(out)
    assert meta["general.name"] == "run-step-000003" and meta["tokenizer.ggml.model"] == "rwkv"
    _close(numpy_gpt2(meta, tensors, ids), our_logits(model, ids), NUMPY_TOL["bf16"])


def test_an_instruct_checkpoint_exports_with_its_prompt_template(tmp_path):
    tok = GPT2Tokenizer()
    cfg = tiny_config(tok, n_layers=1)
    run = save_run(tmp_path / "run", distinct_model(cfg).state_dict(), cfg, tok, task="instruct")
    template = ollama_template("### Instruction:\n{prompt}\n\n### Response:\n")
    written, modelfile = export_gguf(run, tmp_path / "sft.gguf", dtype="q8_0", ollama=True, template=template)
    assert written.eot_text == "<|endoftext|>"
    meta, _, _ = read_gguf(written.path)
    assert (meta["tokenizer.ggml.model"], meta["tokenizer.ggml.pre"]) == ("gpt2", "gpt-2")
    assert meta["tokenizer.ggml.bos_token_id"] == meta["tokenizer.ggml.eos_token_id"] == 50256
    assert len(meta["tokenizer.ggml.merges"]) == 50000 and meta["tokenizer.ggml.add_bos_token"] is False
    text = modelfile.read_text()
    assert 'TEMPLATE """### Instruction:\n{{ .Prompt }}\n\n### Response:\n"""' in text
    assert 'PARAMETER stop "<|endoftext|>"' in text and "FROM ./sft.gguf" in text


def test_ollama_template_prints_braces_of_the_text_literally():
    assert ollama_template("Q: {prompt}\nA:") == "Q: {{ .Prompt }}\nA:"
    assert ollama_template("{{x}} {prompt}") == '{{ "{{" }}x}} {{ .Prompt }}'
    with pytest.raises(ValueError, match="exactly one {prompt}"):
        ollama_template("no placeholder")


def test_a_lora_instruct_run_exports_merged_with_its_template(tmp_path, tiny_text):
    """A fine-tuned run: its LoRA adapters merged into the weights the file holds, and the Modelfile prompting
    the model with the run's own template (alpaca), stopping at end-of-text."""
    import json

    from gptmini.ckpt.state import load_for_inference
    from gptmini.data.prompts import PROMPT_STYLES
    from gptmini.train.engine import Trainer
    from gptmini.train_config import TrainConfig

    records = [{"instruction": f"Say {w}.", "input": "", "output": w} for w in "one two three four five six".split()]
    (tmp_path / "tasks.json").write_text(json.dumps(records * 4))
    small = dict(n_layers=1, n_heads=2, d_model=32, context=64, batch_size=4)
    Trainer(TrainConfig(data=[str(tiny_text)], out=str(tmp_path / "pre"), tokenizer="gpt2", max_steps=2,
                        optimizer="adamw", **small)).run()
    Trainer(TrainConfig(task="instruct", data=[str(tmp_path / "tasks.json")], init_from=str(tmp_path / "pre"),
                        out=str(tmp_path / "sft"), lora_rank=2, max_steps=6, lr=1e-2, batch_size=4)).run()
    assert main(["export", str(tmp_path / "sft"), "--format", "gguf", "--out", str(tmp_path / "sft.gguf"),
                 "--ollama"]) == 0
    modelfile = (tmp_path / "Modelfile").read_text()
    assert f'TEMPLATE """{PROMPT_STYLES["alpaca"].ollama_template}"""' in modelfile
    assert 'PARAMETER stop "<|endoftext|>"' in modelfile
    model, tok, _ = load_for_inference(tmp_path / "sft")
    meta, weights, _ = read_gguf(tmp_path / "sft.gguf")
    ids = tok.encode(PROMPT_STYLES["alpaca"].prompt("Say two."))
    assert np.allclose(numpy_gpt2(meta, weights, ids), our_logits(model, ids), atol=1e-5)
    assert "output.weight" in weights  # the adapted head differs from the token embedding: written untied
