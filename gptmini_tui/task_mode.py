"""What the run trains for, as the console's panes need it: the task's name, an instruction run's prompt
style, a classifier's labels and pad token (from ``RunStarted.task``/``task_info``).

Each pane that differs by task takes the run's ``TaskMode`` (``set_mode``): the header names the task, the
playground formats instructions or classifies texts, the right-hand view shows next tokens or labels, the
Samples panel shows references, the counters show accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

from gptmini import fmt
from gptmini.data.prompts import DEFAULT_STYLE, PromptStyle, prompt_style

PRETRAIN, INSTRUCT, CLASSIFY = "pretrain", "instruct", "classify"


@dataclass(frozen=True)
class TaskMode:
    name: str = PRETRAIN
    template: str | None = None  # instruct: the prompt style's name
    labels: tuple[str, ...] = ()  # classify: the labels, in the head's order
    pad_id: int = 0  # classify: what an empty text is read as

    @classmethod
    def of(cls, started) -> TaskMode:
        """The mode of a ``RunStarted`` event (a run of an older version: pre-training)."""
        info = started.task_info or {}
        if started.task == INSTRUCT:
            return cls(INSTRUCT, template=info.get("template") or DEFAULT_STYLE)
        if started.task == CLASSIFY:
            return cls(CLASSIFY, labels=tuple(str(label) for label in info.get("labels", ())),
                       pad_id=int(info.get("pad_id", 0)))
        return cls(started.task or PRETRAIN)

    @property
    def instruct(self) -> bool:
        return self.name == INSTRUCT

    @property
    def classify(self) -> bool:
        return self.name == CLASSIFY

    @property
    def style(self) -> PromptStyle | None:
        return prompt_style(self.template) if self.instruct and self.template else None

    def model_prompt(self, text: str, extra: str = "") -> str:
        """The text the model reads for what was typed: an instruction (and its input) in the run's template;
        otherwise the text as typed."""
        style = self.style
        return style.prompt(text, extra) if style is not None else text

    def shown_prompt(self, text: str, extra: str = "") -> str:
        """What a reply shows of what was typed: the instruction and, on its own line, the input."""
        return text + (f"\n{extra}" if self.instruct and extra else "")

    def describe(self) -> str:
        """The header's words for the task ('' for pre-training, which the header has always shown bare)."""
        if self.instruct:
            return f"instruct · {self.template} template"
        if self.classify:
            return f"classify · {fmt_labels(self.labels)}"
        return "" if self.name == PRETRAIN else self.name


def fmt_labels(labels: tuple[str, ...], most: int = 6) -> str:
    """``"ham / spam"``; many labels: the first ``most`` and how many more."""
    shown = " / ".join(labels[:most])
    return shown + (f" (+{fmt.human_count(len(labels) - most)})" if len(labels) > most else "")
