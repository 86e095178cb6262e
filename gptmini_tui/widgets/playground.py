"""Playground: the sampling knobs, a prompt, and replies streamed from the weights being trained.

The pane owns generation: ``generate()`` runs a thread worker that samples from the weights its
``source`` gives (``RunSession.sampling_source``: a snapshot of the live run, or the newest checkpoint
when attached) and streams each reply back through ``ReplyStarted`` / ``ReplyProgress`` /
``ReplyFinished``. ``Changed`` bubbles up whenever the prompt or the knobs change, so the screen can
refresh the next-token distribution.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static

from gptmini.errors import GPTMiniError, error_text
from gptmini.sample.strategies import STRATEGIES, key_span, sampling_strategies
from gptmini_tui.actions import key, keys
from gptmini_tui.settings import PlaygroundSettings


def transcript_hint() -> str:
    """What the empty transcript says: how to prompt, and the keys of the playground (the action table's,
    and the strategies' from their registry)."""
    return (f"Type a prompt below ({keys('focus_prompt')} to focus it, {key('submit_prompt')} to generate). "
            f"{key_span(list(STRATEGIES.values()))} pick {' / '.join(STRATEGIES)}, {key('compare')} compares them "
            f"all, {key('stop_generation')} stops.")


class Reply(Static):
    """One reply: a header line (strategy, params, weights' step) and the text."""

    DEFAULT_CSS = """
    Reply { height: auto; margin: 0 0 1 0; padding: 0 1; border-left: thick $primary 50%; }
    Reply.-done { border-left: thick $success 60%; }
    Reply.-stopped { border-left: thick $warning 70%; }
    Reply.-error { border-left: thick $error; }
    """

    def __init__(self, reply_id: int, prompt: str, label: str, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.reply_id = reply_id
        self.prompt = prompt
        self.label = label
        self.weights_step: int | None = None
        self.text = ""
        self.n_tokens = 0
        self.status = "waiting…"
        self.finished = False
        self.reason: str | None = None
        self._show()

    def start(self, label: str, weights_step: int | None) -> None:
        self.label = label
        self.weights_step = weights_step
        self.status = "generating…"
        self._show()

    def progress(self, text: str, n_tokens: int) -> None:
        self.text = text
        self.n_tokens = n_tokens
        self._show()

    def finish(self, text: str, n_tokens: int, seconds: float, reason: str, error: str | None) -> None:
        self.text = text
        self.n_tokens = n_tokens
        self.finished = True
        self.reason = reason
        rate = f", {n_tokens / seconds:.0f} tok/s" if seconds > 0 and n_tokens else ""
        if reason == "error":
            self.status = f"error: {error}"
        elif reason == "stopped":
            self.status = f"stopped after {n_tokens} tokens"
        else:
            self.status = f"{n_tokens} tokens{rate}"
        self.add_class({"done": "-done", "stopped": "-stopped"}.get(reason, "-error"))
        self._show()

    def _show(self) -> None:
        t = Text()
        t.append(self.label, style="bold cyan")
        if self.weights_step is not None:
            t.append(f" · weights @ step {self.weights_step:,}", style="dim")
        t.append(f" · {self.status}", style="red" if self.reason == "error" else "dim")
        t.append("\n")
        t.append(self.prompt, style="bold")
        t.append(self.text)
        if not self.finished:
            t.append("▌", style="dim")
        self.update(t)


class Playground(Vertical):
    DEFAULT_CSS = """
    Playground { height: 1fr; }
    Playground #gen-status { height: 1; padding: 0 1; background: $boost; }
    Playground #transcript { height: 1fr; padding: 0 0; scrollbar-size-vertical: 1; }
    Playground #transcript-hint { color: $text-muted; padding: 0 1; }
    Playground #prompt { height: 3; }
    """

    MAX_REPLIES = 60  # the transcript keeps the newest replies

    @dataclass
    class ReplyStarted(Message):
        reply_id: int
        label: str
        weights_step: int | None

    @dataclass
    class ReplyProgress(Message):
        """Everything generated so far for one reply (latest value)."""

        reply_id: int
        text: str
        n_tokens: int

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, Playground.ReplyProgress) and message.reply_id == self.reply_id

    @dataclass
    class ReplyFinished(Message):
        reply_id: int
        text: str
        n_tokens: int
        seconds: float
        reason: str  # done / stopped / error
        error: str | None = None

    @dataclass
    class GenerationIdle(Message):
        """The generation worker finished all of its replies."""

        generation: int

    @dataclass
    class Changed(Message):
        """The prompt or the sampling knobs changed."""

        prompt: str
        settings: PlaygroundSettings

    def __init__(self, source: Callable[[], Any] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source = source  # () -> SamplingSource, blocking (called on the worker thread)
        self.settings = PlaygroundSettings()
        self.vocab_size: int | None = None
        self.weights_note = "live weights"  # what the replies sample from, for the status line
        self.generating = False
        self.status = Static("", id="gen-status")
        self.transcript = VerticalScroll(id="transcript", can_focus=True)
        self.prompt_input = Input(placeholder=f"prompt — {key('submit_prompt')} generates, {key('leave_prompt')} "
                                              "leaves", id="prompt")
        self._replies: dict[int, Reply] = {}
        self._reply_seq = 0
        self._generation = 0
        self._cancel: threading.Event | None = None

    def compose(self) -> ComposeResult:
        yield self.status
        with self.transcript:
            yield Static(transcript_hint(), id="transcript-hint")
        yield self.prompt_input

    def on_mount(self) -> None:
        self.show_status()

    # ---------------------------------------------------------------- knobs
    def set_strategy(self, strategy: str) -> None:
        self._set(self.settings.with_strategy(strategy))

    def step_temperature(self, direction: int) -> str | None:
        """Temperature up/down; returns a hint when the active strategy does not use it."""
        self._set(self.settings.with_temperature(direction))
        active = STRATEGIES[self.settings.strategy]
        if active.samples:
            return None
        return f"{active.name} ignores temperature; pick {key_span(sampling_strategies())} first"

    def step_param(self, direction: int) -> str | None:
        """The active strategy's knob (T, k, p, ...) up/down; greedy has none (returns a hint)."""
        active = STRATEGIES[self.settings.strategy]
        if active.knob is None:
            tuned = ", ".join(f"{s.key} {s.name}" for s in STRATEGIES.values() if s.knob is not None)
            return f"{active.name} has no knob; {tuned}"
        self._set(self.settings.with_param(direction, self.vocab_size))
        return None

    def fit_vocab(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self._set(self.settings.fit_vocab(vocab_size))

    def suggest_prompt(self, prompt: str) -> None:
        """Fill an empty prompt the user is not typing in (a prompt the tokenizer is known to accept)."""
        box = self.prompt_input
        if prompt and not box.value and not box.has_focus:
            box.value = prompt

    def _set(self, settings: PlaygroundSettings) -> None:
        self.settings = settings
        self.show_status()
        self.post_message(self.Changed(self.prompt_input.value, settings))

    @on(Input.Changed, "#prompt")
    def _prompt_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(event.value, self.settings))

    @on(Input.Submitted, "#prompt")
    def _prompt_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.generate(event.value, [self.settings.strategy])

    def show_status(self, note: str = "") -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" ")
        t.append(self.settings.describe(), style="bold cyan")
        t.append(f"  max {self.settings.max_new_tokens} tok", style="dim")
        t.append(f"  · {self.weights_note}", style="dim")
        if self.generating:
            t.append(f"  · generating… {key('stop_generation')} stops", style="bold yellow")
        if note:
            t.append(f"  · {note}", style="italic")
        self.status.update(t, layout=False)

    # ------------------------------------------------------------ generation
    def generate(self, prompt: str, strategies: list[str] | None = None) -> None:
        """Stream one reply per strategy (default: the active one) for ``prompt``; a newer call cancels."""
        self.cancel()
        self._generation += 1
        self._cancel = cancel = threading.Event()
        jobs = []
        for strategy in strategies or [self.settings.strategy]:
            self._reply_seq += 1
            settings = self.settings.sampling(strategy)
            self._add_reply(self._reply_seq, prompt, settings.describe())
            jobs.append((self._reply_seq, settings))
        self.generating = True
        self.show_status()
        self._generate(self._generation, prompt, jobs, cancel)

    def compare(self, prompt: str) -> None:
        """The same prompt through every strategy, one reply under another."""
        self.generate(prompt, list(STRATEGIES))  # every registered strategy, in key order

    def cancel(self) -> bool:
        """Stop the replies being generated; True if there were any."""
        cancel = self._cancel
        if cancel is not None and not cancel.is_set() and self.generating:
            cancel.set()
            return True
        return False

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def _generate(self, generation: int, prompt: str, jobs: list, cancel: threading.Event) -> None:
        from gptmini.sample.sampler import Sampler, TokenEvent
        from gptmini.train.omp import limit_this_thread

        limit_this_thread(1)  # sample beside training without a second OpenMP team (gptmini/omp.py)
        try:
            if self.source is None:
                raise GPTMiniError("the model is still loading")
            src = self.source()
            sampler = Sampler(src.model, src.tokenizer)
        except Exception as exc:
            for reply_id, _settings in jobs:
                self.post_message(self.ReplyFinished(reply_id, "", 0, 0.0, "error", error_text(exc)))
            self.post_message(self.GenerationIdle(generation))
            return
        for reply_id, settings in jobs:
            if cancel.is_set():
                self.post_message(self.ReplyFinished(reply_id, "", 0, 0.0, "stopped"))
                continue
            self.post_message(self.ReplyStarted(reply_id, settings.describe(), src.step))
            text, n, last_post = "", 0, 0.0
            t0 = time.perf_counter()
            try:
                for tok in sampler.stream(prompt, settings, cancel):
                    text += tok.text
                    if tok.token_id != TokenEvent.FLUSH:
                        n += 1
                    now = time.perf_counter()
                    if now - last_post >= 0.03:  # ~30 updates/s is smooth; more is wasted terminal output
                        last_post = now
                        self.post_message(self.ReplyProgress(reply_id, text, n))
                reason = "stopped" if cancel.is_set() else "done"
                self.post_message(self.ReplyFinished(reply_id, text, n, time.perf_counter() - t0, reason))
            except Exception as exc:
                self.post_message(self.ReplyFinished(reply_id, text, n, time.perf_counter() - t0, "error",
                                                     error_text(exc)))
        self.post_message(self.GenerationIdle(generation))

    @on(ReplyStarted)
    def _reply_started(self, message: ReplyStarted) -> None:
        reply = self._replies.get(message.reply_id)
        if reply is not None:
            reply.start(message.label, message.weights_step)

    @on(ReplyProgress)
    def _reply_progress(self, message: ReplyProgress) -> None:
        reply = self._replies.get(message.reply_id)
        if reply is not None and not reply.finished:
            reply.progress(message.text, message.n_tokens)
            self._follow()

    @on(ReplyFinished)
    def _reply_finished(self, message: ReplyFinished) -> None:
        reply = self._replies.get(message.reply_id)
        if reply is not None:
            reply.finish(message.text, message.n_tokens, message.seconds, message.reason, message.error)
            self._follow()

    @on(GenerationIdle)
    def _generation_idle(self, message: GenerationIdle) -> None:
        if message.generation == self._generation:
            self.generating = False
            self.show_status()

    # ----------------------------------------------------------- transcript
    def _add_reply(self, reply_id: int, prompt: str, label: str) -> Reply:
        reply = Reply(reply_id, prompt, label, id=f"reply-{reply_id}")
        for hint in self.query("#transcript-hint"):
            hint.remove()
        self.transcript.mount(reply)
        self._replies[reply_id] = reply
        for old_id in sorted(self._replies)[: max(0, len(self._replies) - self.MAX_REPLIES)]:
            self._replies.pop(old_id).remove()
        self.transcript.scroll_end(animate=False)
        return reply

    @property
    def replies(self) -> list[Reply]:
        return [self._replies[k] for k in sorted(self._replies)]

    def _follow(self) -> None:
        """Keep the newest text in view unless the user scrolled up to read."""
        t = self.transcript
        if t.max_scroll_y - t.scroll_y <= 4:
            t.scroll_end(animate=False)
