"""Prompt styles, one registry: how an instruction (and its optional input) becomes the text a model
continues with its response.

``alpaca`` is the book's chapter 7 template (the default); ``phi3`` is its exercise 7.1; ``raw`` puts the
instruction in as it is (prompt/completion data). Each style also says how Ollama should format a prompt
(``ollama_template``, Go template syntax), so an exported model is prompted the way it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from gptmini.errors import ConfigError

ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.")


@dataclass(frozen=True)
class PromptStyle:
    name: str
    description: str
    head: str  # before the instruction
    input_head: str  # before a non-empty input (no input section when the input is empty)
    response_head: str  # after the instruction (and input): the model writes its response next
    ollama_template: str  # the same prompt for Ollama's Modelfile (``{{ .Prompt }}`` is the instruction)

    def prompt(self, instruction: str, input: str = "") -> str:  # noqa: A002 - the data's own field name
        """The text the model continues: the instruction, the input if there is one, the response's header."""
        text = self.head + instruction
        if input:
            text += self.input_head + input
        return text + self.response_head


PROMPT_STYLES: dict[str, PromptStyle] = {style.name: style for style in (
    PromptStyle(
        name="alpaca",
        description="the book's chapter 7: '### Instruction:', '### Input:' when there is one, '### Response:'",
        head=f"{ALPACA_PREAMBLE}\n\n### Instruction:\n",
        input_head="\n\n### Input:\n",
        response_head="\n\n### Response:\n",
        ollama_template=f"{ALPACA_PREAMBLE}\n\n### Instruction:\n{{{{ .Prompt }}}}\n\n### Response:\n",
    ),
    PromptStyle(
        name="phi3",
        description="the book's exercise 7.1: '<|user|>' then the instruction and input, '<|assistant|>:'",
        head="<|user|>\n",
        input_head="\n",
        response_head="\n<|assistant|>:\n",
        ollama_template="<|user|>\n{{ .Prompt }}\n<|assistant|>:\n",
    ),
    PromptStyle(
        name="raw",
        description="the instruction (a prompt) as it is, the response right after it",
        head="",
        input_head="\n",
        response_head="",
        ollama_template="{{ .Prompt }}",
    ),
)}
DEFAULT_STYLE = "alpaca"


def prompt_style(name: str) -> PromptStyle:
    style = PROMPT_STYLES.get(name)
    if style is None:
        raise ConfigError(f"unknown prompt template {name!r}; choose one of: {', '.join(PROMPT_STYLES)}")
    return style
