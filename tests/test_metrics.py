"""metrics.jsonl: what another process following a run relies on."""

from __future__ import annotations

import dataclasses
import threading
import time

from gptmini import events as ev
from gptmini.metrics import MetricsFollower, MetricsWriter


def _step(i: int) -> ev.Step:
    return ev.Step(step=i, epoch=1, batch=i, batches_per_epoch=10_000, total_steps=10_000, tokens_seen=64 * i,
                   loss=2.0, loss_smooth=2.0, lr=1e-3, grad_norm=0.5, tok_per_s=1e4, eta_s=None)


def test_fast_steps_are_written_in_a_few_flushes_and_all_arrive_in_order(tmp_path):
    """Between two wake-ups of the writer, steps gather; one flush writes them all."""
    writer = MetricsWriter(tmp_path, interval=30.0)
    writes: list[int] = []
    real_write = writer._write
    writer._write = lambda batch: (writes.append(len(batch)), real_write(batch))  # type: ignore[method-assign]
    follower = MetricsFollower(tmp_path)
    seen: list[ev.Event] = []
    try:
        writer(_step(1))
        deadline = time.monotonic() + 30
        while not seen:  # the first step is written at once; the writer then waits for the interval
            assert time.monotonic() < deadline, "step 1 was never written"
            seen += follower.poll()
            time.sleep(0.01)
        for i in range(2, 2001):  # a small model's pace: thousands of steps a second
            writer(_step(i))
    finally:
        writer.close()  # ends the wait: what gathered is written in one flush, not one per step
    seen += follower.poll()
    assert [e.step for e in seen] == list(range(1, 2001))
    assert writes == [1, 1999]


def test_close_writes_what_is_still_queued_without_waiting_for_the_interval(tmp_path):
    writer = MetricsWriter(tmp_path, interval=3600.0)
    writer(_step(1))
    writer(_step(2))
    closer = threading.Thread(target=writer.close)
    closer.start()
    closer.join(60)  # far less than the hour the writer would otherwise wait between two flushes
    assert not closer.is_alive()
    assert [e.step for e in MetricsFollower(tmp_path).poll()] == [1, 2]


def _example(cls: type[ev.Event]) -> ev.Event:
    values = {"int": 3, "float": 1.5, "str": "text", "bool": True, "dict": {"n_layers": 2, "bias": False},
              "RunState": ev.RunState.PAUSED}
    kwargs = {}
    for f in dataclasses.fields(cls):
        kind = str(f.type).split("|")[0].strip()
        kwargs[f.name] = values[kind]
    return cls(**kwargs)


def test_every_event_kind_survives_a_round_trip_through_a_metrics_record(tmp_path):
    import json

    for kind, cls in ev.EVENT_TYPES.items():
        event = _example(cls)
        record = json.loads(json.dumps(event.to_record()))
        assert record["event"] == kind
        names = {f.name for f in dataclasses.fields(cls)}
        if "metrics" in names:  # a task's metrics are top-level numbers of the line ("val_accuracy")
            names = names - {"metrics"} | set(event.metrics)
        assert set(record) == {"event", *names}
        assert ev.event_from_record(record) == event
