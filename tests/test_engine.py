import json
import math
import time

import pytest
import torch

from gptmini import events as ev
from gptmini.ckpt.store import load_checkpoint
from gptmini.train.engine import Trainer
from gptmini.train.optim import lr_at
from tests.helpers import Recorder, start_in_thread, tiny_config


def test_loss_falls_and_events_tell_the_story(tiny_text, tmp_path):
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=60, eval_interval=30, lr=3e-3))
    trainer.subscribe(rec)
    finished = trainer.run()
    assert finished.reason == "completed" and finished.step == 60
    started = rec.of(ev.RunStarted)[0]
    assert started.tokenizer == "char" and started.device == "cpu" and started.n_params > 0
    steps = rec.of(ev.Step)
    assert [s.step for s in steps] == list(range(1, 61))
    assert steps[-1].loss_smooth < steps[0].loss - 0.8
    assert all(s.tok_per_s > 0 and s.lr > 0 and s.grad_norm > 0 for s in steps[1:])
    assert steps[5].batches_per_epoch == started.batches_per_epoch
    evals = rec.of(ev.Eval)
    assert [e.step for e in evals][:2] == [30, 60] or 30 in [e.step for e in evals]
    assert all(e.val_ppl == pytest.approx(math.exp(e.val_loss)) for e in evals)
    assert rec.of(ev.Sample) and rec.of(ev.Sample)[0].prompt
    assert isinstance(rec.events[-1], ev.Finished)


def test_schedule_warmup_cosine_floor():
    assert lr_at(0, 1.0, 0.1, 10, 110) == pytest.approx(1 / 11)
    assert lr_at(9, 1.0, 0.1, 10, 110) == pytest.approx(10 / 11)
    assert lr_at(10, 1.0, 0.1, 10, 110) == pytest.approx(1.0)
    assert lr_at(60, 1.0, 0.1, 10, 110) == pytest.approx(0.55)
    assert lr_at(110, 1.0, 0.1, 10, 110) == pytest.approx(0.1)
    assert lr_at(500, 1.0, 0.1, 10, 110) == pytest.approx(0.1)


def test_epochs_and_batches_are_counted(tiny_text, tmp_path):
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=None, epochs=2, eval_interval=1000))
    trainer.subscribe(rec)
    trainer.run()
    steps = rec.of(ev.Step)
    per_epoch = steps[0].batches_per_epoch
    assert len(steps) == 2 * per_epoch
    assert [s.batch for s in steps[:per_epoch]] == list(range(1, per_epoch + 1))
    assert {s.epoch for s in steps} == {1, 2}
    assert [e.epoch for e in rec.of(ev.Eval)] == [1, 2]  # evaluated at each epoch end
    assert "epoch" in rec.of(ev.CheckpointSaved)[0].reason


def test_pause_resume_stop_from_another_thread(tiny_text, tmp_path):
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=100000, eval_interval=100000))
    trainer.subscribe(rec)
    th = start_in_thread(trainer)
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= 3)
    trainer.pause()
    rec.wait_for(lambda e: isinstance(e, ev.StateChanged) and e.state == "paused")
    paused_at = trainer.step
    # the paused loop serves requests between its waits: two round trips later, it has not stepped
    assert trainer.snapshot().step == paused_at and trainer.snapshot().step == paused_at == trainer.step
    trainer.resume()
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= paused_at + 3)
    trainer.stop()
    th.join(timeout=60)
    assert not th.is_alive()
    finished = rec.of(ev.Finished)[0]
    assert finished.reason == "stopped"
    saved = rec.of(ev.CheckpointSaved)
    assert saved and saved[-1].step == finished.step and saved[-1].reason == "stop"
    states = [e.state for e in rec.of(ev.StateChanged)]
    assert states[:4] == ["starting", "running", "paused", "running"] and states[-1] == "finished"


def test_start_paused_waits_for_resume(tiny_text, tmp_path):
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run"), start_paused=True)
    trainer.subscribe(rec)
    th = start_in_thread(trainer)
    rec.wait_for(lambda e: isinstance(e, ev.StateChanged) and e.state == "paused")
    assert trainer.snapshot().step == 0 and trainer.step == 0 and not rec.of(ev.Step)
    trainer.resume()
    th.join(timeout=60)
    assert rec.of(ev.Finished)[0].reason == "completed"


def test_snapshot_is_unaffected_by_later_steps(tiny_text, tmp_path):
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=100000, eval_interval=100000))
    trainer.subscribe(rec)
    th = start_in_thread(trainer)
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= 2)
    snap = trainer.snapshot()
    frozen = {k: v.clone() for k, v in snap.model.state_dict().items()}
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= snap.step + 5)
    trainer.stop(save=False)
    th.join(timeout=60)
    for k, v in snap.model.state_dict().items():
        assert torch.equal(v, frozen[k])
    live = trainer.model.state_dict()
    assert not torch.equal(live["wte.weight"], frozen["wte.weight"])
    assert not snap.model.training and snap.step >= 2


def test_nan_loss_stops_with_error_and_keeps_last_good_checkpoint(tiny_text, tmp_path):
    rec = Recorder()
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(tiny_text, run, max_steps=50, save_interval=5, eval_interval=1000))

    def poison(e):
        if isinstance(e, ev.Step) and e.step == 7:  # runs on the training thread, between steps
            with torch.no_grad():
                trainer.model.h[0].mlp.c_fc.weight.fill_(float("nan"))

    trainer.subscribe(rec)
    trainer.subscribe(poison)
    finished = trainer.run()
    assert finished.reason == "error"
    err = rec.of(ev.Error)[0]
    assert err.error_kind == "nan" and err.fatal and "step 8" in err.message
    assert f"The last good checkpoint is {run / 'step-000005'}" in err.message  # where to resume from
    assert [s.step for s in rec.of(ev.CheckpointSaved)] == [5]
    ckpt = load_checkpoint(run)
    assert ckpt.step == 5
    assert all(torch.isfinite(t).all() for t in ckpt.model.values())


def test_manual_save_and_restore_roll_back_the_step(tiny_text, tmp_path):
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=100000, eval_interval=100000))
    trainer.subscribe(rec)
    th = start_in_thread(trainer)
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= 3)
    path = trainer.request_save("manual").result(timeout=30)
    saved = rec.wait_for(lambda e: isinstance(e, ev.CheckpointSaved))
    assert saved.reason == "manual" and (path / "manifest.json").exists()
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= saved.step + 4)
    trainer.request_restore(path).result(timeout=30)
    restored = rec.wait_for(lambda e: isinstance(e, ev.CheckpointRestored))
    assert restored.step == saved.step
    after = rec.wait_for(lambda e: isinstance(e, ev.Step) and rec.events.index(e) > rec.events.index(restored))
    assert after.step == saved.step + 1
    trainer.stop(save=False)
    th.join(timeout=60)


def test_restore_of_a_bad_path_is_an_error_event_not_a_crash(tiny_text, tmp_path):
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=100000, eval_interval=100000))
    trainer.subscribe(rec)
    th = start_in_thread(trainer)
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= 2)
    fut = trainer.request_restore(tmp_path / "nope")
    with pytest.raises(Exception, match="no such checkpoint"):
        fut.result(timeout=30)
    err = rec.wait_for(lambda e: isinstance(e, ev.Error))
    assert not err.fatal and err.error_kind == "checkpoint"
    now = trainer.step
    rec.wait_for(lambda e: isinstance(e, ev.Step) and e.step >= now + 2)  # still training
    trainer.stop(save=False)
    th.join(timeout=60)


def test_metrics_jsonl_is_valid_while_the_run_goes_on(tiny_text, tmp_path):
    rec = Recorder()
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(tiny_text, run, max_steps=100000, eval_interval=5))
    trainer.subscribe(rec)
    th = start_in_thread(trainer)
    rec.wait_for(lambda e: isinstance(e, ev.Eval) and e.step >= 10)
    deadline = time.monotonic() + 60
    while '"event":"sample"' not in (run / "metrics.jsonl").read_text():  # written by its own thread
        assert time.monotonic() < deadline
        time.sleep(0.05)
    text = (run / "metrics.jsonl").read_text()  # read while training continues
    trainer.stop(save=False)
    th.join(timeout=60)
    lines = text.splitlines()
    records = [json.loads(line) for line in lines[:-1] if line]  # the last line may be mid-write
    kinds = {r["event"] for r in records}
    assert {"run_started", "step", "eval", "sample"} <= kinds
    step = next(r for r in records if r["event"] == "step")
    assert {"step", "epoch", "tokens_seen", "loss", "lr", "tok_per_s", "time"} <= set(step)
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["eval_interval"] == 5 and config["model"]["d_model"] == 32


def test_bad_data_is_an_error_event_and_run_returns(tmp_path):
    rec = Recorder()
    trainer = Trainer(tiny_config(tmp_path / "missing.txt", tmp_path / "run"))
    trainer.subscribe(rec)
    finished = trainer.run()
    assert finished.reason == "error"
    err = rec.of(ev.Error)[0]
    assert err.error_kind == "data" and "missing.txt" in err.message


def test_failed_save_reports_error_and_keeps_older_checkpoints(tiny_text, tmp_path, monkeypatch):
    import gptmini.ckpt.store as ck

    rec = Recorder()
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(tiny_text, run, max_steps=10, save_interval=4, eval_interval=1000))
    real = ck.save_file
    calls = {"n": 0}

    def flaky(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] > 2:  # the first checkpoint (2 files) succeeds, later ones hit a full disk
            raise OSError(28, "No space left on device")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ck, "save_file", flaky)
    trainer.subscribe(rec)
    finished = trainer.run()
    assert finished.reason == "completed"
    errors = rec.of(ev.Error)
    assert errors and not errors[0].fatal and "No space left" in errors[0].message
    assert load_checkpoint(run).step == 4
    assert not list(run.glob(".tmp-*"))


def test_out_of_memory_is_an_error_event_with_advice_and_the_process_lives(tiny_text, tmp_path, monkeypatch):
    from gptmini.model.gpt import GPT

    real = GPT.forward
    calls = {"n": 0}

    def forward(self, *a, **k):
        calls["n"] += 1
        if self.training and calls["n"] == 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *a, **k)

    monkeypatch.setattr(GPT, "forward", forward)
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", eval_interval=1000))
    trainer.subscribe(rec)
    finished = trainer.run()
    assert finished.reason == "error"
    err = rec.of(ev.Error)[0]
    assert err.error_kind == "oom" and "--batch-size" in err.message and "--context" in err.message
    assert trainer.state == "error"


def test_tokenising_progress_is_reported_then_the_cache_is_used(tiny_text, tmp_path):
    corpus = tmp_path / "own.txt"  # text no other test has put in the token cache
    corpus.write_text(tiny_text.read_text() + "\nA line only this test tokenises.\n")

    def data_events(out):
        rec = Recorder()
        trainer = Trainer(tiny_config(corpus, tmp_path / out, max_steps=1))
        trainer.subscribe(rec)
        trainer.run()
        kinds = [type(e) for e in rec.events]
        assert kinds.index(ev.DataProgress) < kinds.index(ev.RunStarted)  # before the run, while it tokenises
        return rec.of(ev.DataProgress)

    first = data_events("a")
    size = corpus.stat().st_size
    assert first[-1].done_bytes == first[-1].total_bytes == size and not first[-1].from_cache
    assert all(e.done_bytes < size for e in first[:-1])
    assert [e.done_bytes for e in first] == sorted(e.done_bytes for e in first)
    second = data_events("b")
    assert len(second) == 1 and second[0].from_cache


def test_no_bias_and_adamw_betas_reach_the_model_and_optimizer(tiny_text, tmp_path):
    """nanoGPT's bias=False and beta2=0.99 (its shakespeare-char settings) are options, not silently ignored."""
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=2, bias=False, beta1=0.8, beta2=0.99))
    trainer.run()
    names = [n for n, _ in trainer.model.named_parameters()]
    assert names and not [n for n in names if n.endswith(".bias")]
    adamw_groups = [g for g in trainer.optimizer.param_groups if "betas" in g]  # Muon's take no betas
    assert adamw_groups and all(g["betas"] == (0.8, 0.99) for g in adamw_groups)
    ckpt = load_checkpoint(trainer.last_checkpoint)
    assert ckpt.manifest["model_config"]["bias"] is False and ckpt.manifest["train_config"]["beta2"] == 0.99


def test_a_save_requested_after_the_run_ended_is_written_not_dropped(tiny_text, tmp_path, monkeypatch):
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=3))
    trainer.subscribe(rec)
    trainer.run()
    path = trainer.request_save("manual").result(timeout=60)
    assert path.is_dir() and load_checkpoint(path).step == 3
    assert rec.of(ev.CheckpointSaved)[-1].reason == "manual"

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gptmini.ckpt.writer.save_checkpoint", disk_full)  # a failing late save is an error, not a no-op
    with pytest.raises(OSError, match="No space left"):
        trainer.request_save("manual").result(timeout=60)
    assert "No space left" in rec.of(ev.Error)[-1].message


def test_no_engine_thread_outlives_run(tiny_text, tmp_path):
    """A writer thread still alive when a script ends can abort the interpreter ("terminate called without an
    active exception", exit 134; seen in ~70 % of runs of a script that kept its Trainer until exit)."""
    import threading

    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=3, save_interval=1))
    trainer.run()
    assert [t.name for t in threading.enumerate() if t.name.startswith("gptmini-")] == []


def test_closing_the_checkpoint_writer_waits_for_its_thread(monkeypatch):
    import threading

    from gptmini.ckpt.staging import StagingPool
    from gptmini.ckpt.writer import CheckpointWriter

    pool = StagingPool()
    busy, release = threading.Event(), threading.Event()

    def slow_prefault(spec):
        busy.set()
        assert release.wait(30)

    monkeypatch.setattr(pool, "prefault", slow_prefault)
    writer = CheckpointWriter(pool)
    writer.prefault(())
    assert busy.wait(30)  # the writer is busy when close() comes
    closer = threading.Thread(target=writer.close)
    closer.start()
    deadline = time.monotonic() + 30
    while not writer.closed:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert closer.is_alive()  # close() is waiting for the writer, which cannot end before release
    release.set()
    closer.join(30)
    assert not closer.is_alive() and not writer._thread.is_alive()


def test_the_throughput_readout_leaves_out_warm_up_and_hiccups():
    from gptmini.train.meter import Throughput

    now = [0.0]
    meter = Throughput(flops_per_token=6.0, peak_flops=60.0, window=20, clock=lambda: now[0])
    for i, seconds in enumerate([30.0] + [0.1] * 10 + [5.0] + [0.1] * 5):  # compile, steady, a recompile
        now[0] += seconds
        rate = meter.add(1000)
    assert rate == pytest.approx(10_000)  # 1,000 tokens per 0.1 s: neither the first group nor the hiccup count
    now[0] += 1.0
    meter.exclude(0.9)  # an evaluation took 0.9 s of it
    assert meter.add(1000) == pytest.approx(10_000) and meter.mfu == pytest.approx(1000.0)


def test_tok_s_agrees_with_the_wall_clock_of_the_same_steps(tiny_text, tmp_path):
    """What the counters show is what is measured: the readout over its window equals the tokens those steps
    trained over the time they took, as the steps' own wall-clock time stamps tell (a step that took over
    twice the typical time is left out of both: a hiccup, not the steady state)."""
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=80, eval_interval=100_000))
    trainer.subscribe(rec)
    trainer.run()
    steps = rec.of(ev.Step)
    window = steps[-21:]  # the readout's window: 20 spans of one step each on the CPU
    gaps = [(b.tokens_seen - a.tokens_seen, b.time - a.time) for a, b in zip(window, window[1:])]
    typical = sorted(d / t for t, d in gaps)[len(gaps) // 2]
    steady = [(t, d) for t, d in gaps if d / t <= 2 * typical]
    wall = sum(t for t, _ in steady) / sum(d for _, d in steady)
    assert steps[-1].tok_per_s == pytest.approx(wall, rel=0.10)  # the two clocks are read microseconds apart
