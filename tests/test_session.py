"""``RunSession`` driven directly, as a front end would: no Textual, no sleeps (waits are on events)."""

from __future__ import annotations

import pytest

from gptmini import events as ev
from gptmini.errors import GPTMiniError
from gptmini.events import RunState
from gptmini.history import LossHistory, ViewOptions
from gptmini.session import RunRecord, RunSession
from tests.helpers import Recorder, tiny_config


def step(i: int, bpe: int = 100) -> ev.Step:
    return ev.Step(step=i, epoch=(i - 1) // bpe + 1, batch=(i - 1) % bpe + 1, batches_per_epoch=bpe,
                   total_steps=10 * bpe, tokens_seen=i * 128, loss=2.0, loss_smooth=2.0, lr=1e-3,
                   grad_norm=1.0, tok_per_s=1000.0, eta_s=1.0)


def session_with(recorder: Recorder, **kw) -> RunSession:
    session = RunSession(**kw)
    session.subscribe(recorder)
    return session


def is_state(state: str):
    return lambda e: isinstance(e, ev.StateChanged) and e.state == state


def test_the_record_keeps_the_history_and_rewinds_it_on_restore():
    record = RunRecord(LossHistory())
    for i in range(1, 201):
        record.handle(step(i))
    record.handle(ev.Eval(step=100, epoch=1, tokens_seen=12800, val_loss=1.5, val_ppl=4.5, train_loss=1.6, best=True))
    record.handle(ev.Eval(step=200, epoch=2, tokens_seen=25600, val_loss=1.4, val_ppl=4.0, train_loss=1.5, best=True))
    assert list(record.history.val.epoch) == [pytest.approx(1.0), pytest.approx(2.0)]  # fractional, from the step
    assert record.steps_seen == 200 and record.latest_step.step == 200
    record.handle(ev.CheckpointRestored(step=120, epoch=2, tokens_seen=120 * 128, path="x"))
    assert record.history.last_step == 120 and list(record.history.val.step) == [100]
    assert record.latest_step is None and record.latest_eval is None
    record.handle(ev.StateChanged(state=RunState.PAUSED, step=120))
    assert record.state == "paused"
    record.handle(ev.Error(message="disk full", error_kind="checkpoint", step=120, fatal=False))
    assert [e.message for e in record.save_errors] == ["disk full"]


def test_the_record_keeps_every_sample_and_marks_those_a_restore_undid():
    record = RunRecord(LossHistory())
    for i in (100, 200, 300):
        record.handle(step(i))
        record.handle(ev.Eval(step=i, epoch=1, tokens_seen=i * 128, val_loss=3.0 - i / 100, val_ppl=1.0,
                              train_loss=None, best=True))
        record.handle(ev.Sample(step=i, prompt="The ", text=f"words at {i}"))
    assert [(s.step, s.tokens_seen, s.val_loss) for s in record.samples] == [
        (100, 12800, 2.0), (200, 25600, 1.0), (300, 38400, 0.0)]
    v = record.samples_version
    record.handle(ev.CheckpointRestored(step=150, epoch=1, tokens_seen=150 * 128, path="x"))
    assert [s.undone for s in record.samples] == [False, True, True] and record.samples_version > v
    assert [s.text for s in record.samples] == ["words at 100", "words at 200", "words at 300"]  # none lost


def test_the_record_keeps_a_fine_tuning_samples_reference_and_each_evaluations_metrics():
    """What the console shows of a fine-tuning run: the answer beside the reference, and accuracy per
    evaluation (on the plot beside the loss), rewound by a restore like the loss."""
    record = RunRecord(LossHistory())
    record.handle(ev.Eval(step=0, epoch=1, tokens_seen=0, val_loss=0.9, val_ppl=2.5, train_loss=0.9, best=True,
                          metrics={"train_accuracy": 0.5, "val_accuracy": 0.45}))
    record.handle(ev.Sample(step=0, prompt="the cat sat", text="pets (61%)", reference="pets"))
    for i in range(1, 101):
        record.handle(step(i))
        if i % 50 == 0:
            record.handle(ev.Eval(step=i, epoch=1, tokens_seen=i * 128, val_loss=0.5, val_ppl=1.6, train_loss=0.4,
                                  best=True, metrics={"train_accuracy": 0.9, "val_accuracy": i / 110}))
    assert [(s.prompt, s.text, s.reference) for s in record.samples] == [("the cat sat", "pets (61%)", "pets")]
    record.handle(ev.Sample(step=100, prompt="ROMEO:", text=" the king"))
    assert record.samples[-1].reference is None  # pre-training continues a prompt: no reference
    history = record.history
    assert list(history.metrics["val_accuracy"].step) == [0, 50, 100]
    view = history.view(ViewOptions("steps"))
    assert view.metrics["val_accuracy"] == ([0.0, 50.0, 100.0], [pytest.approx(0.45), pytest.approx(50 / 110),
                                                                  pytest.approx(100 / 110)])
    assert history.view(ViewOptions("steps", after_step=60)).metrics["train_accuracy"] == ([100.0],
                                                                                        [pytest.approx(0.9)])
    record.handle(ev.CheckpointRestored(step=60, epoch=1, tokens_seen=60 * 128, path="x"))
    assert list(history.metrics["val_accuracy"].step) == [0, 50]
    record.handle(step(40))  # a resume from an older step: the evaluations after it go too
    assert list(history.metrics["train_accuracy"].step) == [0]
    history.clear()
    assert history.view(ViewOptions("steps")).metrics == {}


def run_started(task: str, info: dict) -> ev.RunStarted:
    return ev.RunStarted(run_name="r", run_dir="r", model_config={}, n_params=1, corpus="c", corpus_bytes=1,
                         train_tokens=1, val_tokens=1, tokenizer="char", vocab_size=9, device="cpu", dtype="float32",
                         batch_size=1, grad_accum=1, world_size=1, context_length=8, epochs=1, batches_per_epoch=1,
                         total_steps=1, start_step=0, task=task, task_info=info)


def test_what_the_model_reads_and_a_classifiers_verdict_come_from_the_session():
    """A front end formats a typed instruction, ends an answer and classifies a text through the session and
    the weights it gives, never through the tasks themselves."""
    import torch

    from gptmini.data.prompts import PROMPT_STYLES
    from gptmini.model.config import ModelConfig
    from gptmini.model.gpt import GPT
    from gptmini.sample.settings import SamplingSettings
    from gptmini.session import SamplingSource
    from gptmini.tasks.classify import encode_text, predict
    from gptmini.text.tokenizer import build_tokenizer

    session = RunSession()
    assert session.model_prompt("Add 1 and 2.", "1+2") == "Add 1 and 2."  # no run yet: as typed
    session.record.handle(run_started("instruct", {"name": "instruct", "template": "phi3"}))
    assert session.model_prompt("Add 1 and 2.", "1+2") == PROMPT_STYLES["phi3"].prompt("Add 1 and 2.", "1+2")
    session.record.handle(run_started("classify", {"name": "classify", "labels": ["a", "b"], "pad_id": 3}))
    assert session.model_prompt("the cat", "x") == "the cat"

    tok = build_tokenizer("char", "the cat sat\n")
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, context_length=8, n_layers=1, n_heads=2, d_model=16,
                            n_classes=2)).eval()
    source = SamplingSource(model, tok, 5, "live", 0.0, {"name": "classify", "labels": ["a", "b"], "pad_id": 3})
    probs = source.label_probabilities("the cat")
    assert probs == pytest.approx(predict(model, [encode_text(tok, "the cat", 3)], 3)[0].tolist())
    assert len(probs) == 2 and sum(probs) == pytest.approx(1.0)
    assert source.answer_settings(SamplingSettings(max_new_tokens=9)).stop == "\n\n"  # char: the blank line


def test_a_session_trains_pauses_saves_samples_restores_and_stops_with_the_last_step_saved(tiny_text, tmp_path):
    rec = Recorder()
    session = session_with(rec, snapshot_max_age=3600.0)
    run = tmp_path / "run"
    session.start(tiny_config(tiny_text, run, max_steps=100_000, eval_interval=100_000, save_interval=100_000))
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= 3)
    assert session.is_active and session.run_dir == run and session.state == "running"

    session.pause()
    assert session.pause_requested
    rec.wait_for(is_state("paused"))
    paused_at = session.trainer.step
    saved_path = session.save("manual").result(timeout=60)  # served by the paused loop
    saved = rec.wait_for(lambda e: isinstance(e, ev.CheckpointSaved) and e.reason == "manual")
    assert saved.step == paused_at and saved_path == run / f"step-{paused_at:06d}"
    assert session.record.last_saved == saved and session.steps_since_save == 0
    assert [i.step for i in session.list_checkpoints()] == [paused_at]

    assert session.snapshot_step is None  # no snapshot taken yet
    first = session.sampling_source()
    assert first.step == paused_at and first.label == "live" and not first.model.training
    assert session.snapshot_step == paused_at  # what the next sampling_source gives without a new snapshot
    assert session.sampling_source() is first  # cached while the weights have not moved
    session.resume()
    assert not session.pause_requested
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= paused_at + 5)
    assert session.sampling_source() is first  # younger than snapshot_max_age
    session.refresh_sampling()  # an evaluation: take the newer weights next time
    assert session.sampling_source().step > paused_at and session.snapshot_step > paused_at

    rewound: list[int | None] = []
    session.subscribe(lambda e: rewound.append(session.history.last_step)
                      if isinstance(e, ev.CheckpointRestored) else None)
    mark = len(rec.events)
    assert session.restore(saved_path).result(timeout=60) == paused_at
    restored = rec.wait_for(lambda e: isinstance(e, ev.CheckpointRestored), since=mark)
    assert rewound == [paused_at]  # the history was cut back before any listener heard of the restore
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= paused_at + 3, since=rec.events.index(restored))
    assert list(session.history.train.step) == list(range(1, len(session.history.train.step) + 1))  # no gaps, no repeats
    assert session.stop(save_reason="quit") is None
    last = session.record.last_saved
    assert last.reason == "quit" and last.step == session.trainer.step == session.record.latest_step.step
    assert session.state == "finished" and not session.is_active


def test_a_new_run_starts_over_and_a_stop_without_reason_saves_nothing(tiny_text, tmp_path):
    rec = Recorder()
    session = session_with(rec)
    session.start(tiny_config(tiny_text, tmp_path / "one", max_steps=100_000, eval_interval=100_000,
                              save_interval=100_000))
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= 5)
    with pytest.raises(GPTMiniError, match="still going"):
        session.start(tiny_config(tiny_text, tmp_path / "two"))
    assert session.stop() is None
    assert not list((tmp_path / "one").glob("step-*"))
    old = session.trainer
    session.start(tiny_config(tiny_text, tmp_path / "two", max_steps=4, eval_interval=100_000))
    assert session.trainer is not old and session.record.latest_step is None and len(session.history) == 0
    rec.wait_for(lambda e: isinstance(e, ev.Finished) and e.step == 4)
    assert list(session.history.train.step) == [1, 2, 3, 4] and session.run_dir == tmp_path / "two"


def test_a_save_that_fails_on_quit_is_reported(tiny_text, tmp_path, monkeypatch):
    rec = Recorder()
    session = session_with(rec)
    session.start(tiny_config(tiny_text, tmp_path / "run", max_steps=100_000, eval_interval=100_000,
                              save_interval=100_000))
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= 3)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gptmini.ckpt.writer.save_checkpoint", disk_full)
    problem = session.stop(save_reason="quit")
    assert problem is not None and "No space left on device" in problem


def test_controls_without_a_running_trainer_say_why(tiny_text, tmp_path):
    session = RunSession()
    with pytest.raises(GPTMiniError, match="running or paused trainer"):
        session.save()
    with pytest.raises(GPTMiniError, match="no training run"):
        session.sampling_source()
    assert session.stop(save_reason="quit") is None  # nothing to stop


def test_a_crashing_trainer_is_an_error_event_not_a_hang():
    class Exploding:
        step = 0
        is_active = False
        steps_since_save = 0

        def __init__(self, config, start_paused=False):
            pass

        def subscribe(self, callback):
            return lambda: None

        def run(self):
            raise SystemExit("torch is gone")

        def stop(self, save=True, reason="stop"):
            pass

    rec = Recorder()
    session = session_with(rec, trainer_factory=Exploding)
    session.start(object())
    error = rec.wait_for(lambda e: isinstance(e, ev.Error))
    assert error.fatal and "torch is gone" in error.message
    assert session.stop() is None


def test_attach_follows_another_runs_folder_and_samples_its_newest_checkpoint(tiny_text, tmp_path):
    from gptmini.train.engine import Trainer

    run = tmp_path / "run"
    Trainer(tiny_config(tiny_text, run, max_steps=12, eval_interval=6, save_interval=6)).run()
    rec = Recorder()
    session = session_with(rec)
    session.attach(run)
    assert session.attached and session.run_dir == run and session.trainer is None
    events = session.poll()
    assert any(isinstance(e, ev.RunStarted) for e in events) and rec.of(ev.Finished)
    assert list(session.history.train.step) == list(range(1, 13)) and session.state == "finished"
    assert session.steps_since_save == 0  # the run saved its last step
    source = session.sampling_source()
    assert source.step == 12 and source.label == "step-000012"
    assert session.sampling_source() is source  # loaded once
    assert session.newer_checkpoint(session.list_checkpoints()) is None
    with pytest.raises(GPTMiniError, match="belongs to the process"):
        session.save()
    assert session.poll() == []  # nothing new


def test_attach_every_polls_on_a_thread_of_its_own_until_close(tmp_path):
    import json
    import threading

    def write(*events: ev.Event) -> None:
        with (tmp_path / "metrics.jsonl").open("a") as fh:
            fh.writelines(json.dumps(e.to_record()) + "\n" for e in events)

    (tmp_path / "metrics.jsonl").mkdir()  # unreadable: said once, and polled again
    rec = Recorder()
    session = session_with(rec)
    session.attach(tmp_path, every=0.02)
    warning = rec.wait_for(lambda e: isinstance(e, ev.Warning), timeout=30)
    assert warning.message.startswith("cannot read the run's metrics:")
    (tmp_path / "metrics.jsonl").rmdir()
    write(ev.StateChanged(state="running", step=0), step(1))
    rec.wait_for(lambda e: isinstance(e, ev.Step), timeout=30)  # no poll() called: the session's thread read it
    write(step(2))  # what the other process writes later
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step == 2, timeout=30)
    assert session.record.latest_step.step == 2 and session.state == "running"
    assert len(rec.of(ev.Warning)) == 1
    session.close(wait=30)
    assert not [t for t in threading.enumerate() if t.name == "gptmini-follow"]
