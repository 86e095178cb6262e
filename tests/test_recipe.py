"""The training recipe: bf16 only where the CPU computes it natively, Muon beside AdamW, the presets' defaults."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from gptmini import events as ev
from gptmini.ckpt.optim_state import flatten_optimizer_state, unflatten_optimizer_state
from gptmini.errors import CheckpointError, ConfigError
from gptmini.model.gpt import GPT
from gptmini.options import BY_NAME
from gptmini.presets import preset_config
from gptmini.train import device as device_mod
from gptmini.train.device import choose_precision, cpu_has_native_bf16
from gptmini.train.engine import Trainer
from gptmini.train.optim import MuonAdamW, make_optimizer
from gptmini.train.plan import plan_run, resume_changes, resume_config
from gptmini.train_config import TrainConfig
from tests.helpers import Recorder, read_metrics, tiny_config
from tests.test_cli import TINY, run

CPU = torch.device("cpu")
INTEL_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_tile amx_bf16\n"
AMX_ONLY = "flags\t\t: fpu avx2 amx_bf16 amx_tile\n"
AVX2_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nbugs\t\t: sysret_ss_attrs avx512_bf16_typo\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16(INTEL_FLAGS) and cpu_has_native_bf16(AMX_ONLY)
    assert not cpu_has_native_bf16(AVX2_FLAGS)  # a flag-like word outside "flags" does not count
    assert not cpu_has_native_bf16("")  # nothing readable (macOS, Windows): no


@pytest.mark.parametrize("native", [True, False])
def test_auto_picks_bf16_on_a_cpu_only_where_it_is_native_and_pays(monkeypatch, native):
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda cpuinfo=None: native)
    gpt2_vocab = preset_config("raschka-124m", 50257, n_layers=4, n_heads=4, d_model=256)
    char_demo = preset_config("cpu-demo", 65)
    assert choose_precision(CPU, "auto", gpt2_vocab).dtype_name == ("bfloat16" if native else "float32")
    assert choose_precision(CPU, "auto", char_demo).dtype_name == "float32"  # slower in bf16 even where native
    assert choose_precision(CPU, "float32", gpt2_vocab).dtype_name == "float32"  # asked for: kept
    assert choose_precision(CPU, "bfloat16", char_demo).dtype_name == "bfloat16"


@pytest.mark.parametrize("native", [True, False])
def test_the_run_reports_the_precision_auto_chose(tiny_text, tmp_path, monkeypatch, native):
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda cpuinfo=None: native)
    cfg = tiny_config(tiny_text, tmp_path / "run", tokenizer="gpt2", d_model=256, n_heads=4, context=16,
                      batch_size=2, max_steps=2, eval_interval=100)
    rec = Recorder()
    trainer = Trainer(cfg)
    trainer.subscribe(rec)
    trainer.run()
    started = rec.of(ev.RunStarted)[0]
    assert started.dtype == ("bfloat16" if native else "float32")
    assert rec.of(ev.Finished), rec.of(ev.Error)


@pytest.mark.parametrize("options", [dict(optimizer="muon"), dict(optimizer="adamw"), dict(dtype="bfloat16")],
                         ids=["muon", "adamw", "bf16"])
def test_the_loss_falls_with_each_option(tiny_text, tmp_path, options):
    rec = Recorder()
    trainer = Trainer(tiny_config(tiny_text, tmp_path / "run", max_steps=40, lr=3e-3, warmup_steps=5, **options))
    trainer.subscribe(rec)
    trainer.run()
    losses = [e.loss for e in rec.of(ev.Step)]
    assert len(losses) == 40, rec.of(ev.Error)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    started = rec.of(ev.RunStarted)[0]
    assert started.optimizer == options.get("optimizer", "muon")  # tiny_config keeps the cpu-demo preset


def _muon(seed: int = 3):
    torch.manual_seed(seed)
    model = GPT(preset_config("cpu-demo", 40, n_layers=2, d_model=32, n_heads=2, context_length=16))
    return model, make_optimizer(model, 3e-3, 0.1, kind="muon")


def _train(model, opt, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randint(0, 40, (4, 16), generator=gen)
        _logits, loss = model(x, x.roll(-1, dims=1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    model, opt = _muon()
    assert isinstance(opt, MuonAdamW)
    adamw, muon = opt.optimizers
    muon_ids = {id(p) for g in muon.param_groups for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in muon_ids}
    assert names and all(n.startswith("h.") and model.get_parameter(n).dim() == 2 for n in names)
    assert len(opt.param_groups) == len(adamw.param_groups) + len(muon.param_groups)  # the schedule sets all
    every = {id(p) for g in opt.param_groups for p in g["params"]}
    assert every == {id(p) for p in model.parameters()}


def test_muon_state_saves_and_loads_exactly():
    model, opt = _muon()
    _train(model, opt, 3, seed=1)
    tensors, meta = flatten_optimizer_state(opt.state_dict())  # as a checkpoint writes and reads it
    assert {g["optimizer"] for g in meta["param_groups"]} == {"adamw", "muon"}
    twin, twin_opt = _muon(seed=99)
    twin.load_state_dict(model.state_dict())
    twin_opt.load_state_dict(unflatten_optimizer_state({k: v.clone() for k, v in tensors.items()}, meta))
    _train(model, opt, 2, seed=2)
    _train(twin, twin_opt, 2, seed=2)
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(a, b), name
    plain = make_optimizer(twin, 3e-3, 0.1, kind="adamw")
    with pytest.raises(CheckpointError, match="Muon"):
        twin_opt.load_state_dict(plain.state_dict())


def test_our_muon_is_torchs_in_bf16_and_runs_in_fp32_where_bf16_is_emulated(monkeypatch):
    from gptmini.train import muon as muon_mod

    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(48, 16) * 0.02), torch.nn.Parameter(torch.randn(16, 64) * 0.02)]
    theirs = [torch.nn.Parameter(w.detach().clone()) for w in ours]
    a = muon_mod.Muon(ours, lr=3e-3, weight_decay=0.1, ns_dtype=torch.bfloat16)
    b = torch.optim.Muon(theirs, lr=3e-3, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    for _ in range(3):
        for w, v in zip(ours, theirs):
            w.grad = torch.randn_like(w)
            v.grad = w.grad.clone()
        a.step()
        b.step()
    assert all(torch.equal(w, v) for w, v in zip(ours, theirs))
    assert a.state_dict()["param_groups"] == b.state_dict()["param_groups"]
    for native, want in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda cpuinfo=None, native=native: native)
        assert muon_mod.newton_schulz_dtype(CPU) == want
        model = GPT(preset_config("cpu-demo", 40, n_layers=1, d_model=32, n_heads=2, context_length=16))
        assert make_optimizer(model, 1e-3, 0.1, kind="muon").optimizers[1].ns_dtype == want


def _plan(**kw):
    return plan_run(TrainConfig(**kw), batches_per_epoch=1000, device_type="cpu")


def test_presets_resolve_their_own_recipe():
    demo = _plan()
    assert (demo.optimizer, demo.lr, demo.warmup_steps) == ("muon", 5e-3, 20)
    assert _plan(optimizer="adamw").optimizer == "adamw"
    assert _plan(lr=1e-3, warmup_steps=7).lr == 1e-3 and _plan(warmup_steps=7).warmup_steps == 7
    # the presets that reproduce Raschka's book and nanoGPT keep their references' AdamW and rates
    assert (_plan(preset="nanogpt-cpu").optimizer, _plan(preset="nanogpt-cpu").lr) == ("adamw", 1e-3)
    assert (_plan(preset="raschka-124m").optimizer, _plan(preset="raschka-124m").lr) == ("adamw", 6e-4)
    assert _plan(preset="raschka-124m").warmup_steps == 200


def test_the_demo_trains_on_32_sequences_of_64_and_an_explicit_batch_size_wins():
    demo = TrainConfig()
    assert demo.batch_size == 32 and preset_config(demo.preset, 65).context_length == 64
    assert TrainConfig(preset="raschka-124m").batch_size == 16 and TrainConfig(batch_size=4).batch_size == 4
    # the new-run form leaves a blank batch size as None: the preset it names decides
    assert replace(demo, preset="nanogpt-cpu", batch_size=None).batch_size == 16
    assert "cpu-demo 32, else 16" in BY_NAME["batch_size"].help
    # a run saved when the demo trained on batches of 16 resumes with them
    old = _manifest({"preset": "cpu-demo", "batch_size": 16, "lr": None, "warmup_steps": None})
    assert resume_config(TrainConfig(resume="x", explicit=("resume",)), old).batch_size == 16


def _manifest(train_config: dict, schedule: dict | None = None) -> dict:
    return {"train_config": train_config, "schedule": schedule or {}, "tokenizer": {"name": "char"}}


def test_a_checkpoint_from_before_the_recipe_resumes_with_its_own_optimizer_and_schedule():
    old = _manifest({"preset": "cpu-demo", "lr": None, "warmup_steps": None},
                    {"lr": 1e-3, "warmup_steps": 95, "min_lr": 1e-4})
    cfg = resume_config(TrainConfig(resume="x", explicit=("resume",)), old)
    assert (cfg.optimizer, cfg.lr, cfg.warmup_steps) == ("adamw", 1e-3, 95)
    with pytest.raises(ConfigError, match="--optimizer was adamw, now muon"):
        resume_changes(TrainConfig(resume="x", optimizer="muon", explicit=("resume", "optimizer")), old)
    same = resume_changes(TrainConfig(resume="x", optimizer="adamw", explicit=("resume", "optimizer")), old)
    assert "optimizer" not in same


def test_resume_with_another_optimizer_is_one_clear_refusal(tiny_text, tmp_path):
    run_dir = tmp_path / "run"
    trained = run("train", "--data", str(tiny_text), *TINY, "--max-steps", "2", "--out", str(run_dir), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert [r["optimizer"] for r in read_metrics(run_dir) if r["event"] == "run_started"] == ["muon"]
    refused = run("train", "--resume", str(run_dir), "--optimizer", "adamw", "--max-steps", "4", cwd=tmp_path)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "--optimizer was muon, now adamw" in refused.stderr
    same = run("train", "--resume", str(run_dir), "--optimizer", "muon", "--max-steps", "4", cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert "resumed at step 2" in same.stdout


def test_the_plan_says_when_to_evaluate_and_why_to_save():
    plan = _plan(max_steps=1000, eval_interval=100, save_interval=250)  # 1000 steps per epoch
    assert [s for s in range(1, 1001) if plan.evaluates_after(s, epoch_end=s == 1000)] == list(range(100, 1001, 100))
    assert plan.save_reason(50, epoch_end=False, improved=False) is None
    assert plan.save_reason(100, epoch_end=False, improved=True) == "best"
    assert plan.save_reason(250, epoch_end=False, improved=False) == "interval"
    assert plan.save_reason(500, epoch_end=True, improved=True) == "best+epoch+interval"
    assert plan.save_reason(1000, epoch_end=True, improved=False) == "epoch+interval+final"
