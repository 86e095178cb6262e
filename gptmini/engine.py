"""The training engine: one loop for the CLI, the TUI and torchrun.

``Trainer.run()`` blocks (run it in a worker thread when a UI is involved).
Other threads talk to it through ``pause/resume/stop/request_save/
request_restore/snapshot``; all of them take effect between optimizer steps.
Events go to subscribers synchronously on the training thread, so subscribers
must be cheap (queue.put, post_message).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import json
import math
import os
import queue
import random
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from gptmini import events as ev
from gptmini.checkpoint import (
    CheckpointError,
    check_model_config,
    flatten_optimizer_state,
    load_checkpoint,
    load_model_state,
    read_pointer,
    save_checkpoint,
)
from gptmini.config import ModelConfig, preset_config
from gptmini.device import choose_precision, device_name, peak_flops, resolve_device, setup_backends
from gptmini.errors import ConfigError, CorpusError, GPTMiniError, TokenizerError
from gptmini.metrics import MetricsWriter
from gptmini.model import GPT
from gptmini.optim import lr_at, make_optimizer
from gptmini.staging import StagingPool, spec_of
from gptmini.train_config import TrainConfig

Subscriber = Callable[[ev.Event], None]


@dataclass
class ModelSnapshot:
    """An independent copy of the weights at ``step``, in eval mode."""

    model: GPT
    tokenizer: Any
    step: int


class _NonFiniteLoss(Exception):
    def __init__(self, step: int, value: float):
        super().__init__(step, value)
        self.step = step
        self.value = value


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, CheckpointError):
        return "checkpoint"
    if isinstance(exc, (CorpusError, TokenizerError)):
        return "data"
    if isinstance(exc, (ConfigError, ValueError)):
        return "config"
    return "internal"


def default_run_name(cfg: TrainConfig) -> str:
    return f"{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}"


class _CheckpointWriter:
    """Writes checkpoints on a background thread; results come back on a queue."""

    def __init__(self, staging: StagingPool) -> None:
        self.staging = staging
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self.closed = False
        self._thread = threading.Thread(target=self._work, name="gptmini-ckpt-writer", daemon=True)
        self._thread.start()

    def submit(self, job: dict[str, Any]) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        if self.closed:  # the run has ended: a late save request is written here and now
            self.run_job(job)
        else:
            self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self.run_job(job)

    def run_job(self, job: dict[str, Any]) -> None:
        """Do one job (on the writer thread, or inline once the writer is closed); results go to ``done``."""
        if "prefault" in job:
            try:
                self.staging.prefault(job["prefault"])
            except Exception:  # noqa: BLE001 - out of memory here only means the first save allocates
                pass
            finally:
                self._job_done()
            return
        try:
            path = save_checkpoint(
                job["run_dir"], job["step"], job["model"], job["optimizer"], job["manifest"],
                best=job["best"], keep_last=job["keep_last"],
            )
            self.done.put((job, path, None))
        except Exception as exc:  # disk full, permissions...
            self.done.put((job, None, exc))
        finally:
            self.staging.release(job["staged"])
            self._job_done()

    def _job_done(self) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Stop the writer thread and wait for it (a thread still alive when the interpreter exits can abort it)."""
        self.closed = True
        self._jobs.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=60)


class Trainer:
    def __init__(self, config: TrainConfig, *, start_paused: bool = False):
        self.config = config
        self._subscribers: list[Subscriber] = []
        self._pause = threading.Event()
        if start_paused:
            self._pause.set()
        self._stop = threading.Event()
        self._save_on_stop = True
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop_active = threading.Event()
        self.state = "created"
        self.step = 0
        self.epoch = 0  # 0-based epoch index
        self.batch_in_epoch = 0  # optimizer steps done inside the current epoch
        self.tokens_seen = 0
        self.steps_since_save = 0
        self.best_val_loss = math.inf
        self.last_val_loss: float | None = None
        self.last_loss: float | None = None
        self.run_dir: Path | None = None
        self.tokenizer = None
        self.model: GPT | None = None
        self.exception: BaseException | None = None
        self.last_checkpoint: Path | None = None
        self._writer: _CheckpointWriter | None = None
        self._metrics: MetricsWriter | None = None

    # ------------------------------------------------------------ public API
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def pause(self) -> None:
        self._pause.set()

    def resume(self) -> None:
        self._pause.clear()

    def stop(self, save: bool = True) -> None:
        """Finish the current step, save if anything is unsaved (unless ``save=False``), stop."""
        self._save_on_stop = save
        self._stop.set()
        if self.state == "running":
            self._set_state("stopping")

    def request_save(self, reason: str = "manual") -> cf.Future:
        return self._request("save", reason)

    def request_restore(self, path: str | Path) -> cf.Future:
        return self._request("restore", Path(path))

    def snapshot(self, timeout: float = 60.0) -> ModelSnapshot:
        """A consistent copy of the current weights (taken between two steps)."""
        fut = self._request("snapshot", None)
        return fut.result(timeout=timeout)

    @property
    def is_active(self) -> bool:
        return self._loop_active.is_set()

    # ------------------------------------------------------------- internals
    def _request(self, kind: str, arg: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        if self._loop_active.is_set() and threading.current_thread() is not self._thread:
            self._requests.put((kind, arg, fut))
        else:  # nobody is training right now: serve it here
            self._serve(kind, arg, fut)
        return fut

    def _serve(self, kind: str, arg: Any, fut: cf.Future) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            if self.model is None:
                raise GPTMiniError("the model is not loaded yet")
            if kind == "snapshot":
                fut.set_result(self._make_snapshot())
            elif kind == "save":
                fut.set_result(self._save(arg))
            elif kind == "restore":
                fut.set_result(self._restore(arg))
        except _NonFiniteLoss:
            raise
        except Exception as exc:
            fut.set_exception(exc)
            if kind != "snapshot":
                self._emit(ev.Error(message=str(exc), error_kind=_error_kind(exc), step=self.step, fatal=False))

    def _serve_requests(self) -> None:
        while True:
            try:
                kind, arg, fut = self._requests.get_nowait()
            except queue.Empty:
                break
            self._serve(kind, arg, fut)
        self._drain_saves()

    def _emit(self, event: ev.Event) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:  # a broken subscriber must not kill training
                traceback.print_exc()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._emit(ev.StateChanged(state=state, step=self.step))

    # --------------------------------------------------------------- run
    def run(self) -> ev.Finished:
        self._thread = threading.current_thread()
        t0 = time.time()
        reason = "completed"
        self._set_state("starting")
        try:
            self._setup()
            self._loop_active.set()
            reason = self._loop()
        except _NonFiniteLoss as exc:
            reason = "error"
            where = f" The last good checkpoint is {self.last_checkpoint}." if self.last_checkpoint else ""
            self._emit(ev.Error(
                message=f"loss became {exc.value} at step {exc.step}; training stopped without saving.{where} "
                        f"Try a lower --lr or a stronger --grad-clip.",
                error_kind="nan", step=exc.step, fatal=True))
        except torch.OutOfMemoryError:
            reason = "error"
            self._free_memory()
            cfg = self.config
            self._emit(ev.Error(
                message=f"out of GPU memory at step {self.step + 1} (batch {cfg.batch_size}); try a smaller "
                        f"--batch-size (with --grad-accum to keep the global batch) or a shorter --context",
                error_kind="oom", step=self.step, fatal=True))
        except GPTMiniError as exc:
            reason = "error"
            self.exception = exc
            self._emit(ev.Error(message=str(exc), error_kind=_error_kind(exc), step=self.step, fatal=True))
        except Exception as exc:
            reason = "error"
            self.exception = exc
            self._emit(ev.Error(message=f"{type(exc).__name__}: {exc}", error_kind="internal",
                                step=self.step, fatal=True))
        finally:
            self._loop_active.clear()
            self._finish_writes()
            # fail whatever is still queued so no caller waits forever
            while True:
                try:
                    _, _, fut = self._requests.get_nowait()
                except queue.Empty:
                    break
                if fut.set_running_or_notify_cancel():
                    fut.set_exception(GPTMiniError("training has ended"))
        self._set_state("error" if reason == "error" else "finished")
        finished = ev.Finished(step=self.step, reason=reason, loss=self.last_loss, val_loss=self.last_val_loss,
                               elapsed_s=time.time() - t0, tokens_seen=self.tokens_seen)
        self._emit(finished)
        if self._metrics is not None:
            self._metrics.close()
        self._teardown_distributed()
        return finished

    # ------------------------------------------------------------- setup
    def _setup(self) -> None:
        from gptmini.corpus import load_corpus
        from gptmini.data import Batches, TokenData, TokenisingProgress, check_fits, eval_batches, tokenize_corpus
        from gptmini.tokenizer import tokenizer_from_description

        cfg = self.config
        resume = None
        if cfg.resume:
            resume = load_checkpoint(cfg.resume, device="cpu")
            cfg = self.config = resolve_resume_config(cfg, resume.manifest)

        self.rank, self.world_size, local_rank = self._init_distributed()
        self.is_main = self.rank == 0
        device = resolve_device(cfg.device)
        if self.world_size > 1 and device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.precision = choose_precision(device, cfg.dtype)
        self.device = device
        setup_backends(device)

        corpus = load_corpus(cfg.data, cfg.corpus)
        self.corpus = corpus
        if resume is not None:
            self.tokenizer = tokenizer_from_description(resume.manifest["tokenizer"])
            progress = TokenisingProgress(self._emit, corpus, self.tokenizer.name)
            self.token_data = TokenData.build(corpus, self.tokenizer, val_fraction=cfg.val_fraction,
                                              progress=progress)
        else:
            progress = TokenisingProgress(self._emit, corpus, cfg.tokenizer_name)
            self.tokenizer, self.token_data = tokenize_corpus(corpus, cfg.tokenizer_name,
                                                              val_fraction=cfg.val_fraction, progress=progress)
        progress.finish(self.token_data)

        if resume is not None:
            saved = dict(resume.manifest["model_config"])
            if cfg.dropout is not None:
                saved["dropout"] = cfg.dropout
            model_cfg = ModelConfig.from_dict(saved)
            wanted = preset_config(cfg.preset, self.tokenizer.vocab_size, **cfg.model_overrides())
            explicit_dims = {k for k in ("n_layers", "n_heads", "d_model", "context", "bias") if k in cfg.explicit}
            if explicit_dims or "preset" in cfg.explicit:
                check_model_config(saved, wanted.with_overrides(dropout=model_cfg.dropout), resume.path)
        else:
            model_cfg = preset_config(cfg.preset, self.tokenizer.vocab_size, **cfg.model_overrides())
        self.model_config = model_cfg
        T = model_cfg.context_length
        check_fits(self.token_data, T, cfg.batch_size)

        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        model = GPT(model_cfg).to(device)
        self.model = model
        self.optimizer = make_optimizer(model, self._lr, cfg.weight_decay, betas=(cfg.beta1, cfg.beta2),
                                        device_type=device.type)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision.use_scaler else None

        self.batches = Batches(self.token_data.train, T, cfg.batch_size, stride=cfg.stride, seed=cfg.seed,
                               rank=self.rank, world_size=self.world_size)
        self.steps_per_epoch = self.batches.batches_per_epoch // cfg.grad_accum
        if self.steps_per_epoch < 1:
            raise CorpusError(
                f"one epoch has only {self.batches.batches_per_epoch} batches of {cfg.batch_size} per process, "
                f"fewer than --grad-accum {cfg.grad_accum}; lower --grad-accum or --batch-size, or add text")
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.n_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.decay_steps = cfg.lr_decay_steps or self.total_steps
        self.warmup_steps = (cfg.warmup_steps if cfg.warmup_steps is not None
                             else min(200, self.total_steps // 20))
        self.min_lr = cfg.min_lr if cfg.min_lr is not None else self._lr / 10
        self.tokens_per_step = cfg.batch_size * T * cfg.grad_accum * self.world_size
        self.val_set = eval_batches(self.token_data.val, T, cfg.batch_size, cfg.eval_batches)
        self.train_eval_set = eval_batches(self.token_data.train, T, cfg.batch_size, cfg.eval_batches)

        if resume is not None:
            self._apply_checkpoint(resume)
            self.run_dir = resume.path.parent if cfg.out is None else Path(cfg.out)
        else:
            self.run_dir = Path(cfg.out) if cfg.out else Path("checkpoints") / (cfg.run_name or default_run_name(cfg))
        self.run_name = self.run_dir.name

        self._fwd = model
        use_compile = cfg.compile if cfg.compile is not None else device.type == "cuda"
        if use_compile:
            self._fwd = torch.compile(model)
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self._fwd = DDP(self._fwd, device_ids=[device.index] if device.type == "cuda" else None)
        self.log_interval = cfg.log_interval or (1 if device.type == "cpu" else 10)
        self.peak = peak_flops(device)
        self.flops_per_token = model.flops_per_token()
        self._writer = _CheckpointWriter(StagingPool(pin=device.type == "cuda"))
        self._prefault_sent = False
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_config_json()
            self._metrics = MetricsWriter(self.run_dir)
            self.subscribe(self._metrics)

        self._emit(ev.RunStarted(
            run_name=self.run_name, run_dir=str(self.run_dir), model_config=model_cfg.to_dict(),
            n_params=model.num_params(), corpus=corpus.name, corpus_bytes=corpus.n_bytes,
            train_tokens=len(self.token_data.train), val_tokens=len(self.token_data.val),
            tokenizer=self.tokenizer.name, vocab_size=self.tokenizer.vocab_size,
            device=device_name(device), dtype=self.precision.dtype_name, batch_size=cfg.batch_size,
            grad_accum=cfg.grad_accum, world_size=self.world_size, context_length=T,
            epochs=self.n_epochs, batches_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
            start_step=self.step, resumed_from=str(resume.path) if resume is not None else None))

    @property
    def _lr(self) -> float:
        if self.config.lr is not None:
            return self.config.lr
        d_model = self.config.d_model or preset_config(self.config.preset, 100).d_model
        return 1e-3 if d_model <= 384 else 6e-4

    def _write_config_json(self) -> None:
        data = {
            "train": self.config.to_dict(),
            "model": self.model_config.to_dict(),
            "tokenizer": self.tokenizer.describe() if self.tokenizer.name != "char" else {"name": "char"},
            "resolved": {
                "lr": self._lr, "min_lr": self.min_lr, "warmup_steps": self.warmup_steps,
                "lr_decay_steps": self.decay_steps, "total_steps": self.total_steps,
                "steps_per_epoch": self.steps_per_epoch, "device": str(self.device),
                "dtype": self.precision.dtype_name, "world_size": self.world_size,
                "corpus": self.corpus.name, "corpus_bytes": self.corpus.n_bytes,
            },
        }
        tmp = self.run_dir / ".config.json.tmp"
        tmp.write_text(json.dumps(data, indent=2, default=str))
        os.replace(tmp, self.run_dir / "config.json")

    # -------------------------------------------------------------- loop
    def _loop(self) -> str:
        cfg = self.config
        self._pending: list[tuple] = []
        self._inflight: list[tuple] = []
        self._smooth: float | None = None
        self._last_emit_t = time.perf_counter()
        self._excluded = 0.0
        self._rate: float | None = None
        self._spans: collections.deque = collections.deque(maxlen=20)
        self._first_span = None
        self._batch_iter = None
        self._set_state("paused" if self._pause.is_set() else "running")
        while True:
            self._serve_requests()
            if self._stop.is_set():
                reason = "stopped"
                break
            if self._pause.is_set():
                self._wait_paused()
                continue
            if self.step >= self.total_steps:
                reason = "completed"
                break
            self._train_step()
            if not self._prefault_sent:
                self._prefault_staging()
            self.step += 1
            self.batch_in_epoch += 1
            self.tokens_seen += self.tokens_per_step
            self.steps_since_save += 1
            epoch_end = self.batch_in_epoch >= self.steps_per_epoch
            if epoch_end:
                self.epoch += 1
                self.batch_in_epoch = 0
                self._batch_iter = None
            self._maybe_sync_stop()
            reasons = []
            improved = False
            if epoch_end or self.step % cfg.eval_interval == 0 or self.step == self.total_steps:
                improved = self._evaluate()
                if improved and self.step > 0:
                    reasons.append("best")
            if epoch_end:
                reasons.append("epoch")
            if self.step % cfg.save_interval == 0:
                reasons.append("interval")
            if self.step == self.total_steps:
                reasons.append("final")
            if reasons:
                self._save("+".join(dict.fromkeys(reasons)), best=improved)
        self._flush_losses(wait=True)
        if reason == "stopped" and self._save_on_stop and self.steps_since_save > 0:
            self._save("stop")
        return reason

    def _wait_paused(self) -> None:
        self._flush_losses(wait=True)
        self._set_state("paused")
        t0 = time.perf_counter()
        while self._pause.is_set() and not self._stop.is_set():
            self._serve_requests()
            time.sleep(0.02)
        self._excluded += time.perf_counter() - t0
        if not self._stop.is_set():
            self._set_state("running")

    def _next_micro_batch(self):
        if self._batch_iter is None:
            start = self.batch_in_epoch * self.config.grad_accum
            self._batch_iter = iter(self.batches.epoch_batches(self.epoch, start_batch=start))
        x, y = next(self._batch_iter)
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
            y = y.pin_memory().to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            x, y = x.to(self.device), y.to(self.device)
        return x, y

    def _train_step(self) -> None:
        cfg = self.config
        model = self._fwd
        model.train()
        lr = lr_at(self.step, self._lr, self.min_lr, self.warmup_steps, self.decay_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum = None
        x, y = self._next_micro_batch()
        for micro in range(cfg.grad_accum):
            last = micro == cfg.grad_accum - 1
            if self.world_size > 1:
                model.require_backward_grad_sync = last
            with self.precision.autocast():
                _, loss = model(x, y)
            if not last:  # prefetch the next micro-batch while the GPU works
                x, y = self._next_micro_batch()
            scaled = loss / cfg.grad_accum
            if self.scaler is not None:
                self.scaler.scale(scaled).backward()
            else:
                scaled.backward()
            d = loss.detach()
            loss_sum = d if loss_sum is None else loss_sum + d
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        gnorm = self._clip_gradients()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        meta = (self.step + 1, self.epoch + 1, self.batch_in_epoch + 1, lr, time.perf_counter())
        self._pending.append((meta, loss_sum / cfg.grad_accum, gnorm.detach()))
        if len(self._pending) >= self.log_interval:
            self._launch_fetch()
        self._flush_losses(wait=False)

    def _clip_gradients(self) -> torch.Tensor:
        """Total gradient norm (reported every step); rescale the gradients when it exceeds --grad-clip.

        Same math as ``clip_grad_norm_``, which always multiplies by ``min(clip / (norm + 1e-6), 1)`` so
        that a GPU never waits for the norm. On the CPU there is nothing to wait for, so the no-op
        multiply by 1 (a full pass over every gradient) is skipped, and with --grad-clip 0 it never runs.
        """
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        clip = self.config.grad_clip
        if clip > 0 and (self.device.type != "cpu" or float(norm) + 1e-6 > clip):
            torch.nn.utils.clip_grads_with_norm_(params, clip, norm)
        return norm

    # ---------------------------------------------- asynchronous loss fetch
    def _launch_fetch(self) -> None:
        if not self._pending:
            return
        metas = [p[0] for p in self._pending]
        vals = torch.stack([torch.stack([p[1].float(), p[2].float()]) for p in self._pending])
        self._pending = []
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(vals, op=dist.ReduceOp.SUM)
            vals[:, 0] /= self.world_size
        if self.device.type == "cuda":
            host = torch.empty(vals.shape, dtype=vals.dtype, pin_memory=True)
            host.copy_(vals, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self._inflight.append((metas, host, done))
        else:
            self._inflight.append((metas, vals.cpu(), None))

    def _flush_losses(self, wait: bool) -> None:
        if wait:
            self._launch_fetch()
        while self._inflight:
            metas, host, done = self._inflight[0]
            if done is not None:
                if wait:
                    done.synchronize()
                elif not done.query():
                    return
            self._inflight.pop(0)
            self._emit_steps(metas, host.tolist())

    def _emit_steps(self, metas: list[tuple], values: list[list[float]]) -> None:
        now = time.perf_counter()
        span = now - self._last_emit_t - self._excluded
        self._last_emit_t, self._excluded = now, 0.0
        # Throughput over the recent window; the very first group (compile, allocator warm-up) is
        # dropped as soon as a second one exists, so tok/s and MFU show the steady state.
        self._spans.append((len(metas) * self.tokens_per_step, max(span, 1e-9)))
        if len(self._spans) > 1 and self._spans[0] is self._first_span:
            self._spans.popleft()
        if self._first_span is None:
            self._first_span = self._spans[0]
        self._rate = sum(t for t, _ in self._spans) / sum(d for _, d in self._spans)
        mem = torch.cuda.max_memory_allocated(self.device) / 1e9 if self.device.type == "cuda" else None
        for (step, epoch, batch, lr, _), (loss, gnorm) in zip(metas, values):
            if not math.isfinite(loss):
                raise _NonFiniteLoss(step, loss)
            self._smooth = loss if self._smooth is None else 0.9 * self._smooth + 0.1 * loss
            self.last_loss = loss
            steps_left = self.total_steps - step
            eta = steps_left * self.tokens_per_step / self._rate if self._rate else None
            mfu = self.flops_per_token * self._rate / self.peak if self.peak else None
            self._emit(ev.Step(step=step, epoch=epoch, batch=batch, batches_per_epoch=self.steps_per_epoch,
                               total_steps=self.total_steps, tokens_seen=step * self.tokens_per_step,
                               loss=loss, loss_smooth=self._smooth, lr=lr, grad_norm=gnorm,
                               tok_per_s=self._rate, eta_s=eta, mfu=mfu, gpu_mem_gb=mem))

    def _maybe_sync_stop(self) -> None:
        """Under torchrun every rank must stop at the same step."""
        if self.world_size == 1 or self.step % self.log_interval:
            return
        import torch.distributed as dist

        flag = torch.tensor([1.0 if self._stop.is_set() else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0:
            self._stop.set()

    # -------------------------------------------------------- evaluation
    @torch.no_grad()
    def _mean_loss(self, batches) -> float:
        total = 0.0
        for x, y in batches:
            x, y = x.to(self.device), y.to(self.device)
            with self.precision.autocast():
                _, loss = self.model(x, y)
            total += loss.item()
        return total / max(1, len(batches))

    def _evaluate(self) -> bool:
        """Validation loss (rank 0), a sample; returns True when val loss improved."""
        self._flush_losses(wait=True)
        t0 = time.perf_counter()
        improved = False
        if self.is_main:
            self.model.eval()
            try:
                val = self._mean_loss(self.val_set)
                train = self._mean_loss(self.train_eval_set)
                improved = val < self.best_val_loss
                if improved:
                    self.best_val_loss = val
                self.last_val_loss = val
                epoch = self.epoch if self.batch_in_epoch == 0 and self.step > 0 else self.epoch + 1
                self._emit(ev.Eval(step=self.step, epoch=epoch, tokens_seen=self.tokens_seen,
                                   val_loss=val, val_ppl=math.exp(min(val, 700)), train_loss=train,
                                   best=improved))
                self._emit_sample()
            finally:
                self.model.train()
        self._excluded += time.perf_counter() - t0
        return improved

    def _emit_sample(self) -> None:
        from gptmini.sampling import Sampler, SamplingSettings

        prompt = self._sample_prompt()
        if prompt is None:
            return
        try:
            sampler = Sampler(self.model, self.tokenizer)
            text = sampler.generate(prompt, SamplingSettings(strategy="greedy",
                                                             max_new_tokens=self.config.sample_tokens))
        except GPTMiniError as exc:
            self._emit(ev.Warning(message=f"sample skipped: {exc}", step=self.step))
            return
        finally:
            self.model.train()
        self._emit(ev.Sample(step=self.step, prompt=prompt, text=text))

    def _sample_prompt(self) -> str | None:
        if getattr(self, "_prompt_cache", None) is not None:
            return self._prompt_cache
        candidates = [self.config.sample_prompt] if self.config.sample_prompt else [
            "Every effort moves you", "The ", "the "]
        for prompt in candidates:
            try:
                self.tokenizer.encode(prompt)
            except GPTMiniError as exc:
                if self.config.sample_prompt:
                    self._emit(ev.Warning(message=f"--sample-prompt cannot be used: {exc}", step=self.step))
                    return None
                continue
            self._prompt_cache = prompt
            return prompt
        val = self.tokenizer.decode(list(self.token_data.val[:8]))
        self._prompt_cache = val or None
        return self._prompt_cache

    # ------------------------------------------------------- checkpoints
    def _rng_tensors(self) -> dict[str, torch.Tensor]:
        out = {"rng.torch_cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and self.device.type == "cuda":
            out["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        return out

    def _state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Live model and optimizer tensors (no copies), prefixed ``model.`` / ``optim.``; optimizer metadata."""
        sources = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_meta = flatten_optimizer_state(self.optimizer.state_dict())
        sources.update({f"optim.{k}": v for k, v in opt_tensors.items()})
        return sources, opt_meta

    def _prefault_staging(self) -> None:
        """Once the optimizer state exists, let the writer map a staging buffer set ahead of the first save."""
        self._prefault_sent = True
        if self.is_main:
            self._writer.submit({"prefault": spec_of(self._state_tensors()[0])})

    def _save(self, reason: str, best: bool = False) -> Path | None:
        """Copy the state to host memory now; write it on the writer thread."""
        self._flush_losses(wait=True)  # never save weights that already produced a NaN (all ranks)
        if not self.is_main:
            self.steps_since_save = 0
            return None
        t0 = time.perf_counter()
        sources, opt_meta = self._state_tensors()
        staged = self._writer.staging.copy(sources)  # into reused host buffers: no fresh page faults
        model_state = {k[len("model."):]: v for k, v in staged.items() if k.startswith("model.")}
        opt_tensors = {k[len("optim."):]: v for k, v in staged.items() if k.startswith("optim.")}
        opt_tensors.update(self._rng_tensors())
        manifest = {
            "model_config": self.model_config.to_dict(),
            "tokenizer": self.tokenizer.describe(),
            "train_config": self.config.to_dict(),
            "optimizer": opt_meta,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "position": {"step": self.step, "epoch": self.epoch, "batch": self.batch_in_epoch,
                         "tokens_seen": self.tokens_seen, "steps_per_epoch": self.steps_per_epoch},
            "schedule": {"lr": self._lr, "min_lr": self.min_lr, "warmup_steps": self.warmup_steps,
                         "decay_steps": self.decay_steps, "total_steps": self.total_steps},
            "best_val_loss": self.best_val_loss if math.isfinite(self.best_val_loss) else None,
            "train_loss": self.last_loss,
            "val_loss": self.last_val_loss,
            "rng": {"python": _jsonable_random_state(), "data_seed": self.config.seed},
            "wall_time": time.time(),
            "n_params": self.model.num_params(),
            "corpus": self.corpus.name,
        }
        blocked = time.perf_counter() - t0
        self._excluded += blocked
        self._writer.submit({"run_dir": self.run_dir, "step": self.step, "model": model_state,
                             "optimizer": opt_tensors, "manifest": manifest, "best": best,
                             "keep_last": self.config.keep_last, "reason": reason, "blocked": blocked,
                             "staged": staged})
        self.steps_since_save = 0
        if self._writer.closed:  # after the run: written inline above; report it (or fail the request) now
            job, path, exc = self._writer.done.get_nowait()
            if exc is not None:
                raise exc
            self._saved(job, path)
            return path
        from gptmini.checkpoint import checkpoint_name

        return self.run_dir / checkpoint_name(self.step)

    def _drain_saves(self) -> None:
        if self._writer is None:
            return
        while True:
            try:
                job, path, exc = self._writer.done.get_nowait()
            except queue.Empty:
                return
            if exc is not None:
                self.steps_since_save = max(self.steps_since_save, 1)
                self._emit(ev.Error(message=f"could not save checkpoint at step {job['step']} in {job['run_dir']}: "
                                            f"{exc}; older checkpoints are untouched",
                                    error_kind="checkpoint", step=job["step"], fatal=False))
            else:
                self._saved(job, path)

    def _saved(self, job: dict[str, Any], path: Path) -> None:
        self.last_checkpoint = path
        self._emit(ev.CheckpointSaved(step=job["step"], path=str(path), reason=job["reason"], best=job["best"],
                                      seconds=job["blocked"]))

    def _finish_writes(self) -> None:
        if self._writer is not None:
            self._writer.wait_idle(timeout=600)
            self._drain_saves()
            self._writer.close()
            self._writer.staging.clear()

    def _restore(self, path: Path) -> int:
        self._flush_losses(wait=True)
        ckpt = load_checkpoint(path, device="cpu")
        if ckpt.manifest.get("tokenizer") != self.tokenizer.describe():
            raise CheckpointError(f"{ckpt.path} was trained with another tokenizer or vocabulary")
        self._apply_checkpoint(ckpt)
        self._batch_iter = None
        self.steps_since_save = 0
        self._emit(ev.CheckpointRestored(step=self.step, epoch=self.epoch + 1, tokens_seen=self.tokens_seen,
                                         path=str(ckpt.path)))
        return self.step

    def _apply_checkpoint(self, ckpt) -> None:
        check_model_config(ckpt.manifest["model_config"], self.model_config, ckpt.path)
        load_model_state(self.model, {k: v.to(self.device) for k, v in ckpt.model.items()}, ckpt.path)
        opt = ckpt.optimizer
        if opt is None:
            raise CheckpointError(f"{ckpt.path} holds no optimizer state; it cannot be resumed (only sampled)")
        state = self.optimizer.state_dict()
        for saved_group, group in zip(opt["param_groups"], state["param_groups"]):
            for key in ("fused", "foreach", "capturable", "differentiable"):
                if key in group:
                    saved_group[key] = group[key]
        self.optimizer.load_state_dict(opt)
        if self.scaler is not None and ckpt.manifest.get("scaler"):
            self.scaler.load_state_dict(ckpt.manifest["scaler"])
        pos = ckpt.manifest["position"]
        if pos.get("steps_per_epoch") not in (None, self.steps_per_epoch) and pos["batch"]:
            raise CheckpointError(
                f"{ckpt.path} was saved mid-epoch with {pos['steps_per_epoch']} steps per epoch; this run has "
                f"{self.steps_per_epoch} (batch size, data or world size changed)")
        self.step, self.epoch, self.batch_in_epoch = pos["step"], pos["epoch"], pos["batch"]
        self.tokens_seen = pos["tokens_seen"]
        self.best_val_loss = ckpt.manifest.get("best_val_loss") or math.inf
        self.last_val_loss = ckpt.manifest.get("val_loss")
        self.last_loss = ckpt.manifest.get("train_loss")
        self._restore_rng(ckpt)
        self.last_checkpoint = ckpt.path

    def _restore_rng(self, ckpt) -> None:
        raw = ckpt.rng
        if "rng.torch_cpu" in raw:
            torch.set_rng_state(raw["rng.torch_cpu"])
        if "rng.cuda" in raw and self.device.type == "cuda":
            torch.cuda.set_rng_state(raw["rng.cuda"], self.device)
        py = ckpt.manifest.get("rng", {}).get("python")
        if py:
            random.setstate((py[0], tuple(py[1]), py[2]))

    def _make_snapshot(self) -> ModelSnapshot:
        with torch.device("meta"):
            copy = GPT(self.model_config)
        copy = copy.to_empty(device=self.device)
        copy.load_state_dict(self.model.state_dict())
        copy.eval().requires_grad_(False)
        return ModelSnapshot(model=copy, tokenizer=self.tokenizer, step=self.step)

    # ----------------------------------------------------- distributed
    def _init_distributed(self) -> tuple[int, int, int]:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return 0, 1, 0
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and self.config.device in ("auto", "cuda") else "gloo"
            dist.init_process_group(backend=backend)
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))

    def _teardown_distributed(self) -> None:
        if getattr(self, "world_size", 1) > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def _free_memory(self) -> None:
        for name in ("_pending", "_inflight"):
            if hasattr(self, name):
                setattr(self, name, [])
        if getattr(self, "optimizer", None) is not None:
            self.optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _jsonable_random_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def resolve_resume_config(cfg: TrainConfig, manifest: dict[str, Any]) -> TrainConfig:
    """The checkpoint's training options, overridden by those the user set explicitly."""
    base = dict(manifest.get("train_config") or {})
    for name in cfg.explicit:
        base[name] = getattr(cfg, name)
    base["resume"] = cfg.resume
    if "out" not in cfg.explicit:
        base["out"] = None
    return TrainConfig.from_dict(base, explicit=cfg.explicit)


def latest_in(run_dir: Path) -> str | None:
    return read_pointer(run_dir, "latest")
