import json
import multiprocessing as mp
import os
import pickle
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gptmini.ckpt.files import read_pointer
from gptmini.ckpt.listing import list_checkpoints
from gptmini.ckpt.seal import verify_checkpoint
from gptmini.ckpt.state import check_model_config, load_for_inference
from gptmini.ckpt.store import load_checkpoint, save_checkpoint
from gptmini.errors import CheckpointError, ConfigError
from gptmini.interop.weights import export_weights
from gptmini.model.config import ModelConfig
from gptmini.train.engine import Trainer
from tests.helpers import tiny_config


def _state(seed: int, n: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(n, n, generator=g), "b.bias": torch.randn(n, generator=g)}


MANIFEST = {"model_config": {"d_model": 32}, "tokenizer": {"name": "char", "chars": ["a"]}}


def test_roundtrip_pointers_and_manifest(tmp_path):
    save_checkpoint(tmp_path, 10, _state(1), {"state.0.exp_avg": torch.ones(3)}, MANIFEST, best=True)
    save_checkpoint(tmp_path, 20, _state(2), None, MANIFEST)
    assert read_pointer(tmp_path, "latest") == "step-000020"
    assert read_pointer(tmp_path, "best") == "step-000010"
    ck = load_checkpoint(tmp_path)
    assert ck.step == 20 and torch.equal(ck.model["a.weight"], _state(2)["a.weight"])
    m = json.loads((tmp_path / "step-000010" / "manifest.json").read_text())
    assert m["format_version"] == 1 and set(m["files"]) == {"model.safetensors", "optimizer.safetensors"}
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in m["files"].values())


def test_retention_keeps_last_k_and_best(tmp_path):
    save_checkpoint(tmp_path, 1, _state(1), None, MANIFEST, best=True, keep_last=2)
    for step in range(2, 7):
        save_checkpoint(tmp_path, step, _state(step), None, MANIFEST, keep_last=2)
    names = sorted(p.name for p in tmp_path.glob("step-*"))
    assert names == ["step-000001", "step-000005", "step-000006"]
    infos = list_checkpoints(tmp_path)
    assert [i.is_best for i in infos] == [True, False, False] and infos[-1].is_latest


def _corrupt_cases():
    def truncate(d: Path):
        p = d / "model.safetensors"
        p.write_bytes(p.read_bytes()[:-10])
        return "truncated"

    def flip(d: Path):
        p = d / "model.safetensors"
        data = bytearray(p.read_bytes())
        data[-5] ^= 0xFF
        p.write_bytes(bytes(data))
        return "sha256"

    def missing(d: Path):
        (d / "model.safetensors").unlink()
        return "missing"

    def version(d: Path):
        m = json.loads((d / "manifest.json").read_text())
        m["format_version"] = 99
        (d / "manifest.json").write_text(json.dumps(m))
        return "format version 99"

    def no_manifest(d: Path):
        (d / "manifest.json").unlink()
        return "no checkpoint found"

    return [truncate, flip, missing, version, no_manifest]


@pytest.mark.parametrize("corrupt", _corrupt_cases(), ids=lambda f: f.__name__)
def test_damaged_checkpoint_gives_one_clear_error(tmp_path, corrupt):
    d = save_checkpoint(tmp_path, 5, _state(1), None, MANIFEST)
    expected = corrupt(d)
    with pytest.raises(CheckpointError, match=expected) as info:
        load_checkpoint(tmp_path)
    assert "\n" not in str(info.value)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    _Evil.marker = marker
    d = tmp_path / "step-000001"
    d.mkdir()
    payload = pickle.dumps({"weights": _Evil()})
    for name in ("model.safetensors", "model.pt"):
        (d / name).write_bytes(payload)
    import hashlib

    files = {n: {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
             for n in ("model.safetensors", "model.pt")}
    (d / "manifest.json").write_text(json.dumps({"format_version": 1, "step": 1, "files": files,
                                                 "model_config": {}, "tokenizer": {}}))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(d)
    with pytest.raises(CheckpointError):
        load_for_inference(d)
    assert not marker.exists()


def test_config_mismatch_names_the_field():
    cur = ModelConfig(vocab_size=65, context_length=32, n_layers=1, n_heads=2, d_model=384)
    saved = dict(cur.to_dict(), d_model=256)
    with pytest.raises(CheckpointError, match="checkpoint has d_model=256, this run has 384"):
        check_model_config(saved, cur, Path("ckpt"))


def _save_forever(run_dir: str, seed: int) -> None:
    step = 1000 * seed
    big = {"w": torch.randn(512, 1024), "v": torch.randn(512, 1024)}  # 4 MB per save
    while True:
        step += 1
        save_checkpoint(run_dir, step, big, {"state.0.m": torch.randn(256, 256)}, MANIFEST, keep_last=2,
                        best=step % 3 == 0)


def test_sigkill_during_saves_never_leaves_a_broken_latest(tmp_path):
    ctx = mp.get_context("fork")
    run_dir = tmp_path / "run"
    rng = random.Random(0)
    for trial in range(24):
        proc = ctx.Process(target=_save_forever, args=(str(run_dir), trial + 1))
        proc.start()
        if trial == 0:  # the first trial must finish one save before it can be checked
            deadline = time.time() + 30
            while read_pointer(run_dir, "latest") is None and time.time() < deadline:
                time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        ck = load_checkpoint(run_dir)  # latest loads and verifies
        assert ck.model["w"].shape == (512, 1024)
        for d in run_dir.glob("step-*"):  # no visible half-written checkpoint
            verify_checkpoint(d)
        best = read_pointer(run_dir, "best")
        if best:
            verify_checkpoint(run_dir / best)


def test_checkpoint_holds_everything_to_resume(tiny_text, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(tiny_text, run, max_steps=6, dropout=0.1)).run()
    ck = load_checkpoint(run)
    m = ck.manifest
    assert m["position"]["step"] == 6 and m["position"]["tokens_seen"] == 6 * 4 * 32
    assert m["tokenizer"]["name"] == "char" and m["tokenizer"]["chars"]
    assert m["train_config"]["dropout"] == 0.1 and m["model_config"]["d_model"] == 32
    assert "python" in m["rng"] and m["rng"]["data_seed"] == 7
    assert {"rng.torch_cpu"} <= set(ck.rng)
    assert ck.optimizer["state"] and ck.optimizer["param_groups"][0]["weight_decay"] == 0.1
    assert m["train_loss"] > 0 and m["val_loss"] > 0 and m["schedule"]["total_steps"] == 6


def test_export_writes_weights_only_without_padding(tiny_text, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(tiny_text, run, max_steps=2)).run()
    out = export_weights(run, tmp_path / "w.safetensors")
    tensors = load_file(str(out))
    vocab = load_checkpoint(run).manifest["model_config"]["vocab_size"]
    assert tensors["wte.weight"].shape[0] == vocab
    assert not any(k.startswith("state.") or k.startswith("rng.") for k in tensors)
    with pytest.raises(ConfigError, match="must end in .safetensors"):  # refused before the checkpoint is read
        export_weights(run, tmp_path / "w.bin")


def test_listing_tells_how_far_into_the_run_each_checkpoint_is(tiny_text, tmp_path):
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=7, save_interval=3, keep_last=10))
    trainer.run()
    per_epoch = trainer.plan.steps_per_epoch
    infos = {i.step: i for i in list_checkpoints(tmp_path / "run")}
    assert set(infos) >= {3, 6, 7}
    for step, info in infos.items():
        assert info.epochs_done == pytest.approx(step / per_epoch)  # 1.50 = half-way through epoch 2
