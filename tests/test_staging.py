"""Checkpoint staging buffers: reused between saves, and never mixing up the state of two saves."""

from __future__ import annotations

import threading

import torch
from helpers import Recorder, tiny_config

from gptmini import events as ev
from gptmini.ckpt.staging import StagingPool, spec_of
from gptmini.ckpt.store import load_checkpoint
from gptmini.train.engine import Trainer


def test_released_buffers_are_reused_and_hold_the_new_values():
    pool = StagingPool()
    src = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4, dtype=torch.float64)}
    first = pool.copy(src)
    assert torch.equal(first["a"], src["a"]) and first["a"].data_ptr() != src["a"].data_ptr()
    ptr = first["a"].data_ptr()
    pool.release(first)
    src["a"].add_(10)
    second = pool.copy(src)
    assert second["a"].data_ptr() == ptr  # same memory, no new allocation
    assert torch.equal(second["a"], src["a"]) and pool.allocations == 1


def test_a_held_set_is_never_handed_out_twice():
    pool = StagingPool()
    src = {"a": torch.zeros(3)}
    held = pool.copy(src)  # the writer still holds this one
    src["a"].fill_(1)
    other = pool.copy(src)
    assert held["a"].data_ptr() != other["a"].data_ptr()
    assert torch.equal(held["a"], torch.zeros(3)) and torch.equal(other["a"], torch.ones(3))


def test_memory_is_bounded_a_save_waits_for_the_writer_when_all_sets_are_held():
    pool = StagingPool(keep=2)
    src = {"a": torch.zeros(3)}
    held = [pool.copy(src), pool.copy(src)]  # one being written, one queued
    got: list = []
    copier = threading.Thread(target=lambda: got.append(pool.copy(src)))
    copier.start()
    copier.join(0.3)
    assert copier.is_alive() and not got  # a third copy waits: no set is free and no third may be made
    pool.release(held[0])  # the writer finishes the first
    copier.join(30)
    assert not copier.is_alive()
    assert got[0]["a"].data_ptr() == held[0]["a"].data_ptr() and pool.allocations == 2


def test_sets_of_an_old_shape_are_dropped():
    pool = StagingPool(keep=2)
    pool.release(pool.copy({"a": torch.zeros(3)}))
    pool.release(pool.copy({"a": torch.zeros(5)}))  # e.g. the optimizer state appeared: old shapes are useless
    assert [spec for spec, _ in pool._free] == [spec_of({"a": torch.zeros(5)})]


def test_prefault_makes_the_first_copy_reuse_memory():
    pool = StagingPool()
    src = {"w": torch.randn(8, 8)}
    pool.prefault(spec_of(src))
    out = pool.copy(src)
    assert pool.allocations == 1 and torch.equal(out["w"], src["w"])


def test_every_checkpoint_holds_the_weights_of_its_own_step(tiny_text, tmp_path):
    """Saves every step reuse staging buffers; each checkpoint must still hold exactly its step's weights."""
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=6, save_interval=1, keep_last=10))
    weights: dict[int, torch.Tensor] = {}
    rec = Recorder()
    trainer.subscribe(rec)
    real_save = trainer._save

    def save_and_record(reason, best=False):  # the weights at the moment the engine decides to save
        weights[trainer.step] = trainer.model.h[0].mlp.c_fc.weight.detach().clone()
        return real_save(reason, best)

    trainer._save = save_and_record
    trainer.run()
    saved = rec.of(ev.CheckpointSaved)
    assert sorted({e.step for e in saved}) == list(range(1, 7))
    for step, w in weights.items():
        ckpt = load_checkpoint(tmp_path / "run" / f"step-{step:06d}")
        assert torch.equal(ckpt.model["h.0.mlp.c_fc.weight"], w), step
    assert trainer._saves.writer.staging.allocations <= 2  # two sets reused, not one per save
