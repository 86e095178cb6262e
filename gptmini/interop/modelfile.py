"""An Ollama ``Modelfile`` beside an exported GGUF (``gptmini export --format gguf --ollama``), so that
``ollama create NAME -f Modelfile`` builds the prompt the way GPTMini does."""

from __future__ import annotations

import os
from pathlib import Path

from gptmini.errors import ConfigError

MODELFILE = "Modelfile"
RAW_PROMPT = "{{ .Prompt }}"  # Ollama's template for "the prompt, as typed"


def ollama_template(template: str, placeholder: str = "{prompt}") -> str:
    """A prompt template written as text around ``placeholder`` (e.g. ``"### Instruction:\\n{prompt}\\n\\n###
    Response:\\n"``) in Ollama's Go-template syntax: the placeholder becomes ``{{ .Prompt }}`` and any ``{{``
    of the text itself is printed literally."""
    if template.count(placeholder) != 1:
        raise ConfigError(f"a prompt template needs exactly one {placeholder} (where the prompt goes), "
                          f"found {template.count(placeholder)}")
    before, after = template.split(placeholder)
    return _literal(before) + RAW_PROMPT + _literal(after)


def _literal(text: str) -> str:
    return text.replace("{{", '{{ "{{" }}')  # "{{" opens a Go-template action; this prints it instead


def check_template(template: str | None) -> None:
    """Raise if ``template`` cannot go between a Modelfile TEMPLATE's triple quotes."""
    if template is not None and '"""' in template:
        raise ConfigError('the prompt template contains """, which a Modelfile TEMPLATE cannot hold')


def modelfile_text(gguf_name: str, eot_text: str | None, context_length: int, *, template: str | None,
                   source: str) -> str:
    """The Modelfile for ``gguf_name`` (a file in the same folder)."""
    check_template(template)
    body = template if template is not None else RAW_PROMPT
    lines = [
        f"# Ollama Modelfile for {gguf_name}, written by `gptmini export --format gguf --ollama` from {source}",
        f"# ollama create NAME -f {MODELFILE} && ollama run NAME",
        f"FROM ./{gguf_name}",
        "# the prompt template of the run" if template is not None
        else "# a pre-training run has no prompt template: the prompt goes to the model as raw text",
        f'TEMPLATE """{body}"""',
    ]
    if eot_text is not None:
        lines.append(f'PARAMETER stop "{eot_text}"')
    else:
        lines.append("# the char tokenizer has no end-of-text token: generation runs until num_predict tokens")
    lines += [
        "# GPT-2's positions are a learned table: a longer context than the model's has no positions",
        f"PARAMETER num_ctx {context_length}",
    ]
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_path: Path, eot_text: str | None, context_length: int, *, template: str | None = None,
                    source: str = "a GPTMini model") -> Path:
    """Write ``Modelfile`` beside ``gguf_path`` (atomically) and return its path."""
    text = modelfile_text(gguf_path.name, eot_text, context_length, template=template, source=source)
    path = gguf_path.with_name(MODELFILE)
    tmp = path.with_name(f".{MODELFILE}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
