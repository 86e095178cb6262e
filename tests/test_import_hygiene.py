"""The library must never import the UI toolkit (a notebook user imports gptmini alone)."""

import subprocess
import sys

CODE = r"""
import sys, torch
import gptmini, gptmini.train.engine, gptmini.sample.sampler, gptmini.ckpt.store, gptmini.ckpt.state
import gptmini.data.tokens, gptmini.data.windows, gptmini.text.corpus, gptmini.text.tokenizer, gptmini.presets
import gptmini.interop.pretrained, gptmini.interop.hf_export, gptmini.metrics, gptmini.cli, gptmini.session, gptmini.history, gptmini.fmt
from gptmini import GPT, ModelConfig
m = GPT(ModelConfig(vocab_size=50, context_length=8, n_layers=1, n_heads=2, d_model=16))
x = torch.randint(0, 50, (2, 8))
_, loss = m(x, x)
loss.backward()
bad = sorted(k for k in sys.modules if k == "textual" or k.startswith(("textual.", "textual_plotext", "plotext")))
print("BAD:" + ",".join(bad))
"""


def test_library_never_imports_textual():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "BAD:\n" in out.stdout or out.stdout.strip() == "BAD:", out.stdout


def test_no_library_module_mentions_textual_imports():
    from pathlib import Path

    import gptmini

    root = Path(gptmini.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            s = line.strip()
            assert not (s.startswith("import textual") or s.startswith("from textual")), f"{path}: {s}"


LIGHT = r"""
import sys
import gptmini, gptmini.text.corpus, gptmini.text.tokenizer, gptmini.data.tokens, gptmini.cli, gptmini.model.config
import gptmini.presets, gptmini.events, gptmini.options, gptmini.train_config
from gptmini.cli import build_parser
build_parser()
print("TORCH:" + str("torch" in sys.modules))
from gptmini import GPT  # the model is still one attribute away
print("AFTER:" + str("torch" in sys.modules))
"""


def test_tokenising_and_option_parsing_do_not_import_torch():
    """Corpus/tokenizer/data tools run without torch's ~200 MB; option errors appear without its 2 s import."""
    out = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "TORCH:False" in out.stdout and "AFTER:True" in out.stdout, out.stdout
