"""One-line run header: run name, the task (a fine-tuning run's template or labels), device/dtype,
parameters (and how many train, when fewer do: LoRA, frozen layers), corpus, tokenizer."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gptmini import fmt
from gptmini_tui.task_mode import TaskMode


class RunHeader(Static):
    DEFAULT_CSS = """
    RunHeader { height: 1; width: 1fr; background: $panel; color: $foreground; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self._mode = ""
        self._info: dict[str, str] = {}
        self._render_header()

    def set_mode(self, mode: str) -> None:
        """A badge after the app name, e.g. 'ATTACHED'."""
        self._mode = mode
        self._render_header()

    def set_loading(self, what: str) -> None:
        self._info = {"loading": what}
        self._render_header()

    def set_run(self, started) -> None:
        """Fill in from a ``RunStarted`` event."""
        dims = started.model_config or {}
        self._info = {
            "run": started.run_name,
            "device": f"{started.device} {started.dtype}",
            "params": f"{fmt.human_count(started.n_params, 1)} params",
            "model": (
                f"{dims.get('n_layers', '?')}L {dims.get('n_heads', '?')}H d{dims.get('d_model', '?')} "
                f"ctx{dims.get('context_length', started.context_length)}"
            ),
            "corpus": f"{started.corpus} {fmt.human_count(started.train_tokens + started.val_tokens, 1)} tok",
            "tokenizer": f"{started.tokenizer} ({started.vocab_size:,})",
        }
        if started.init_from:
            self._info["init"] = f"init: {started.init_from}"
        task = TaskMode.of(started).describe()
        if task:
            self._info["task"] = task
        trainable = started.trainable_params
        if trainable is not None and trainable != started.n_params:
            self._info["params"] = (f"{fmt.human_count(trainable, 1)} of {fmt.human_count(started.n_params, 1)} "
                                    "params trainable")
        self._render_header()

    def _render_header(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" GPTMini ", style="bold reverse")
        if self._mode:
            t.append(" ")
            t.append(f" {self._mode} ", style="bold black on yellow")
        sep = (" │ ", "dim")
        if "loading" in self._info:
            t.append("  ")
            t.append(self._info["loading"], style="italic")
        elif self._info:
            t.append("  ")
            t.append(self._info["run"], style="bold")
            for key in ("task", "init", "device", "params", "corpus", "tokenizer", "model"):
                if key in self._info:
                    t.append(*sep)
                    t.append(self._info[key])
        self.update(t, layout=False)

    @property
    def info(self) -> dict[str, str]:
        return dict(self._info)
