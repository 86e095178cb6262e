"""What the run trains for, as the console's panes need it: the task's name, an instruction run's template,
a classifier's labels (from ``RunStarted.task``/``task_info``). What the model reads for a typed instruction
and a classifier's verdict come from the session (``RunSession.model_prompt``, ``SamplingSource``).

Each pane that differs by task takes the run's ``TaskMode`` (``set_mode``): the header names the task, the
playground formats instructions or classifies texts, the right-hand view shows next tokens or labels, the
Samples panel shows references, the counters show accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

from gptmini import fmt

PRETRAIN, INSTRUCT, CLASSIFY = "pretrain", "instruct", "classify"


@dataclass(frozen=True)
class TaskMode:
    name: str = PRETRAIN
    template: str | None = None  # instruct: the prompt style's name
    labels: tuple[str, ...] = ()  # classify: the labels, in the head's order

    @classmethod
    def of(cls, started) -> TaskMode:
        """The mode of a ``RunStarted`` event (a run of an older version: pre-training)."""
        info = started.task_info or {}
        if started.task == INSTRUCT:
            return cls(INSTRUCT, template=str(info.get("template", "")))
        if started.task == CLASSIFY:
            return cls(CLASSIFY, labels=tuple(str(label) for label in info.get("labels", ())))
        return cls(started.task or PRETRAIN)

    @property
    def instruct(self) -> bool:
        return self.name == INSTRUCT

    @property
    def classify(self) -> bool:
        return self.name == CLASSIFY

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
