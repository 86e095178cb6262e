"""Playground: the sampling knobs, a prompt, and replies streamed from the weights being trained.

The pane owns generation: ``generate()`` runs a thread worker that samples from the weights its
``source`` gives (``RunSession.sampling_source``: a snapshot of the live run, or the newest checkpoint
when attached) and streams each reply back through ``ReplyStarted`` / ``ReplyProgress`` /
``ReplyFinished``. ``Changed`` bubbles up whenever the prompt or the knobs change, so the screen can
refresh the next-token distribution.

What it does with what is typed follows the run's task (``set_mode``): pre-training continues the prompt;
an instruction run formats it as an instruction (with an optional input, in the input box beside it) in the
run's template, answers up to end-of-text, and shows the formatted prompt on request; a classifier
classifies the text and shows each label's probability as a bar (``classify()``, a worker of its own).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static

from gptmini.errors import GPTMiniError, error_text
from gptmini.sample.strategies import STRATEGIES, key_span, sampling_strategies
from gptmini_tui.actions import key, keys
from gptmini_tui.settings import PlaygroundSettings
from gptmini_tui.task_mode import TaskMode, fmt_labels
from gptmini_tui.widgets.reply import Reply, Verdict

__all__ = ["Playground", "Reply", "Verdict", "transcript_hint"]


def transcript_hint(mode: TaskMode = TaskMode()) -> str:
    """What the empty transcript says: how to prompt, and the keys of the playground (the action table's,
    and the strategies' from their registry)."""
    focus, submit = keys("focus_prompt"), key("submit_prompt")
    strategies = (f"{key_span(list(STRATEGIES.values()))} pick {' / '.join(STRATEGIES)}, {key('compare')} compares "
                  f"them all")
    if mode.classify:
        return (f"Type a text below ({focus} to focus it, {submit} to classify it): each label's probability shows as "
                f"a bar.")
    if mode.instruct:
        return (f"Type an instruction below ({focus} to focus it, Tab for its optional input, {submit} to answer). "
                f"{strategies}, {key('toggle_formatted')} shows the formatted prompt, {key('stop_generation')} stops.")
    return (f"Type a prompt below ({focus} to focus it, {submit} to generate). {strategies}, "
            f"{key('stop_generation')} stops.")


class Playground(Vertical):
    DEFAULT_CSS = """
    Playground { height: 1fr; }
    Playground #gen-status { height: 1; padding: 0 1; background: $boost; }
    Playground #transcript { height: 1fr; padding: 0 0; scrollbar-size-vertical: 1; }
    Playground #transcript-hint { color: $text-muted; padding: 0 1; }
    Playground #prompt-preview { display: none; height: auto; max-height: 50%; background: $boost; }
    Playground #prompt-preview > Static { padding: 0 1; }
    Playground #prompt-row { height: 3; }
    Playground #prompt { height: 3; width: 2fr; }
    Playground #prompt-input { display: none; height: 3; width: 1fr; }
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
        at_end: bool | None = None  # an answer: it ended at end-of-text (False: at the token limit)

    @dataclass
    class Classified(Message):
        """A classifier's verdict on a text: each label's probability."""

        reply_id: int
        rows: list = field(default_factory=list)
        weights_step: int | None = None
        error: str | None = None

    @dataclass
    class GenerationIdle(Message):
        """The generation worker finished all of its replies."""

        generation: int

    @dataclass
    class Changed(Message):
        """The prompt or the sampling knobs changed (``prompt``: the text the model reads)."""

        prompt: str
        settings: PlaygroundSettings

    def __init__(self, source: Callable[[], Any] | None = None, formatter: Callable[[str, str], str] | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.source = source  # () -> SamplingSource, blocking (called on the worker thread)
        self.formatter = formatter  # (text, input) -> what the model reads (RunSession.model_prompt)
        self.settings = PlaygroundSettings()
        self.mode = TaskMode()
        self.vocab_size: int | None = None
        self.weights_note = "live weights"  # what the replies sample from, for the status line
        self.generating = False
        self.show_formatted = False  # an instruction run: show the prompt the model reads
        self.status = Static("", id="gen-status")
        self.transcript = VerticalScroll(id="transcript", can_focus=True)
        self.hint = Static(transcript_hint(), id="transcript-hint")
        self.preview = VerticalScroll(id="prompt-preview", can_focus=False)  # its end in view: the instruction, the response head
        self.preview_text = Static("")
        self.prompt_input = Input(placeholder=self._placeholder(), id="prompt")
        self.extra_input = Input(placeholder=f"input (optional) — {key('submit_prompt')} answers", id="prompt-input")
        self._replies: dict[int, Reply | Verdict] = {}
        self._reply_seq = 0
        self._generation = 0
        self._cancel: threading.Event | None = None

    def compose(self) -> ComposeResult:
        yield self.status
        with self.transcript:
            yield self.hint
        with self.preview:
            yield self.preview_text
        with Horizontal(id="prompt-row"):
            yield self.prompt_input
            yield self.extra_input

    def on_mount(self) -> None:
        self.show_status()

    @property
    def inputs(self) -> tuple[Input, Input]:
        """The boxes typed into (the prompt, and an instruction's input)."""
        return self.prompt_input, self.extra_input

    # ----------------------------------------------------------------- task
    def set_mode(self, mode: TaskMode) -> None:
        """What typing does: continue a prompt, answer an instruction, or classify a text."""
        if mode == self.mode:
            return
        self.mode = mode
        self.extra_input.display = mode.instruct
        self.prompt_input.placeholder = self._placeholder()
        self.hint.update(transcript_hint(mode))
        self._show_preview()
        self._set(self.settings)

    def _placeholder(self) -> str:
        submit, leave = key("submit_prompt"), key("leave_prompt")
        if self.mode.classify:
            return f"text — {submit} classifies, {leave} leaves"
        if self.mode.instruct:
            return f"instruction — {submit} answers, Tab: its input, {leave} leaves"
        return f"prompt — {submit} generates, {leave} leaves"

    def model_prompt(self, text: str | None = None, extra: str | None = None) -> str:
        """The text the model reads for ``text`` and ``extra`` (default: what is typed): an instruction and its
        input in the run's template; otherwise the text as typed."""
        text = self.prompt_input.value if text is None else text
        extra = (self.extra_input.value if extra is None else extra) if self.mode.instruct else ""
        return self.formatter(text, extra) if self.formatter is not None else text

    def toggle_formatted(self) -> bool:
        """Show (or hide) the formatted prompt: above the prompt, and in each answer."""
        self.show_formatted = not self.show_formatted
        self._show_preview()
        for reply in self._replies.values():
            if isinstance(reply, Reply):
                reply.set_show_formatted(self.show_formatted)
        return self.show_formatted

    def _show_preview(self) -> None:
        shown = self.show_formatted and self.mode.instruct
        self.preview.display = shown
        if shown:
            text = Text(f"the model reads ({self.mode.template} template):\n", style="dim")
            text.append(self.model_prompt(), style="italic")
            self.preview_text.update(text)
            self.preview.call_after_refresh(self.preview.scroll_end, animate=False)

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
        """Fill an empty prompt the user is not typing in (a prompt the tokenizer is known to accept; an
        instruction's input, on the lines after it, goes to the input box)."""
        box, extra = self.inputs
        if prompt and not box.value and not box.has_focus and not extra.has_focus:
            first, _, rest = prompt.partition("\n") if self.mode.instruct else (prompt, "", "")
            box.value, extra.value = first, rest.replace("\n", " ") if rest else extra.value

    def _set(self, settings: PlaygroundSettings) -> None:
        self.settings = settings
        self.show_status()
        self.post_message(self.Changed(self.model_prompt(), settings))

    @on(Input.Changed, "#prompt, #prompt-input")
    def _prompt_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._show_preview()
        self.post_message(self.Changed(self.model_prompt(), self.settings))

    @on(Input.Submitted, "#prompt, #prompt-input")
    def _prompt_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.mode.classify:
            self.classify(self.prompt_input.value)
        else:
            self.generate(self.prompt_input.value, [self.settings.strategy])

    def show_status(self, note: str = "") -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" ")
        if self.mode.classify:
            t.append(f"classifier: {fmt_labels(self.mode.labels)}", style="bold cyan")
        else:
            t.append(self.settings.describe(), style="bold cyan")
            t.append(f"  max {self.settings.max_new_tokens} tok", style="dim")
        if self.mode.instruct:
            t.append(f"  · {self.mode.template} template, up to end-of-text", style="dim")
        t.append(f"  · {self.weights_note}", style="dim")
        if self.generating:
            t.append(f"  · generating… {key('stop_generation')} stops", style="bold yellow")
        if note:
            t.append(f"  · {note}", style="italic")
        self.status.update(t, layout=False)

    # ------------------------------------------------------------ generation
    def generate(self, prompt: str, strategies: list[str] | None = None, extra: str | None = None) -> None:
        """Stream one reply per strategy (default: the active one) for ``prompt``; a newer call cancels.

        An instruction run reads ``prompt`` (with ``extra``, default the input box) as an instruction in its
        template and answers up to end-of-text."""
        self.cancel()
        self._generation += 1
        self._cancel = cancel = threading.Event()
        mode = self.mode
        extra = (self.extra_input.value if extra is None else extra) if mode.instruct else ""
        text = self.model_prompt(prompt, extra)
        formatted = text if mode.instruct else None
        jobs = []
        for strategy in strategies or [self.settings.strategy]:
            self._reply_seq += 1
            settings = self.settings.sampling(strategy)
            self._add_reply(Reply(self._reply_seq, mode.shown_prompt(prompt, extra), settings.describe(), formatted,
                                  id=f"reply-{self._reply_seq}"))
            jobs.append((self._reply_seq, settings))
        self.generating = True
        self.show_status()
        self._generate(self._generation, text, jobs, cancel, mode.instruct)

    def compare(self, prompt: str | None = None) -> None:
        """The same prompt (default: what is typed) through every strategy, one reply under another."""
        self.generate(self.prompt_input.value if prompt is None else prompt, list(STRATEGIES))  # in key order

    def cancel(self) -> bool:
        """Stop the replies being generated; True if there were any."""
        cancel = self._cancel
        if cancel is not None and not cancel.is_set() and self.generating:
            cancel.set()
            return True
        return False

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def _generate(self, generation: int, prompt: str, jobs: list, cancel: threading.Event, answer: bool) -> None:
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
            if answer:  # up to the end marker the examples were trained with
                settings = src.answer_settings(settings)
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
                at_end = n < settings.max_new_tokens if answer and reason == "done" else None
                self.post_message(self.ReplyFinished(reply_id, text, n, time.perf_counter() - t0, reason,
                                                     at_end=at_end))
            except Exception as exc:
                self.post_message(self.ReplyFinished(reply_id, text, n, time.perf_counter() - t0, "error",
                                                     error_text(exc)))
        self.post_message(self.GenerationIdle(generation))

    @on(ReplyStarted)
    def _reply_started(self, message: ReplyStarted) -> None:
        reply = self._replies.get(message.reply_id)
        if isinstance(reply, Reply):
            reply.start(message.label, message.weights_step)

    @on(ReplyProgress)
    def _reply_progress(self, message: ReplyProgress) -> None:
        reply = self._replies.get(message.reply_id)
        if isinstance(reply, Reply) and not reply.finished:
            reply.progress(message.text, message.n_tokens)
            self._follow()

    @on(ReplyFinished)
    def _reply_finished(self, message: ReplyFinished) -> None:
        reply = self._replies.get(message.reply_id)
        if isinstance(reply, Reply):
            reply.finish(message.text, message.n_tokens, message.seconds, message.reason, message.error,
                         message.at_end)
            self._follow()

    @on(GenerationIdle)
    def _generation_idle(self, message: GenerationIdle) -> None:
        if message.generation == self._generation:
            self.generating = False
            self.show_status()

    # -------------------------------------------------------- classification
    def classify(self, text: str) -> None:
        """A classifier's verdict on ``text``: each label's probability, as bars in the transcript."""
        self._reply_seq += 1
        self._add_reply(Verdict(self._reply_seq, text, id=f"reply-{self._reply_seq}"))
        self._classify(self._reply_seq, text, self.mode)

    @work(thread=True, group="classify", exit_on_error=False)
    def _classify(self, reply_id: int, text: str, mode: TaskMode) -> None:
        from gptmini.train.omp import limit_this_thread
        from gptmini_tui.widgets.probs import label_probabilities

        limit_this_thread(1)
        try:
            if self.source is None:
                raise GPTMiniError("the model is still loading")
            src = self.source()
            self.post_message(self.Classified(reply_id, label_probabilities(src, text, mode), src.step))
        except Exception as exc:
            self.post_message(self.Classified(reply_id, error=error_text(exc)))

    @on(Classified)
    def _classified(self, message: Classified) -> None:
        verdict = self._replies.get(message.reply_id)
        if isinstance(verdict, Verdict):
            verdict.finish(message.rows, message.weights_step, message.error)
            self._follow()

    # ----------------------------------------------------------- transcript
    def _add_reply(self, reply: Reply | Verdict) -> None:
        if self.hint.is_mounted:
            self.hint.remove()
        if isinstance(reply, Reply):
            reply.set_show_formatted(self.show_formatted)
        self.transcript.mount(reply)
        self._replies[reply.reply_id] = reply
        for old_id in sorted(self._replies)[: max(0, len(self._replies) - self.MAX_REPLIES)]:
            self._replies.pop(old_id).remove()
        self.transcript.scroll_end(animate=False)

    @property
    def replies(self) -> list[Reply | Verdict]:
        return [self._replies[k] for k in sorted(self._replies)]

    def _follow(self) -> None:
        """Keep the newest text in view unless the user scrolled up to read."""
        t = self.transcript
        if t.max_scroll_y - t.scroll_y <= 4:
            t.scroll_end(animate=False)
