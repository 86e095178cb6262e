"""The training engine: one loop for the CLI, the console and torchrun.

``Trainer.run()`` blocks (run it in a worker thread when a UI is involved).
Other threads talk to it through ``pause/resume/stop/request_save/
request_restore/snapshot``; all of them take effect between optimizer steps.
Events go to subscribers synchronously on the training thread, so subscribers
must be cheap (queue.put, post_message).

What the run trains for is its ``Task`` (``tasks/``: its data, batches, evaluation, samples); the
parts live beside the loop: the run's numbers are resolved by ``plan.plan_run``, losses and
throughput are reported by ``meter.StepReporter``, saves are written by ``ckpt/writer.py``, and what
a checkpoint records (and a resume puts back) is ``ckpt/state.py``'s ``training_manifest`` /
``apply_training_state``.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import random
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from gptmini import events as ev
from gptmini.ckpt.files import write_json_atomic
from gptmini.ckpt.runlock import RunLock
from gptmini.ckpt.state import (
    ResumePoint,
    apply_training_state,
    live_state,
    rng_tensors,
    training_manifest,
)
from gptmini.ckpt.store import Checkpoint, load_checkpoint
from gptmini.ckpt.writer import RunSaves
from gptmini.data.batch import Batch
from gptmini.errors import (
    CheckpointError,
    ConfigError,
    CorpusError,
    GPTMiniError,
    TokenizerError,
)
from gptmini.events import RunState
from gptmini.interop.init import InitWeights, open_base, open_init
from gptmini.metrics import MetricsWriter
from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT
from gptmini.model.lora import count_trainable, merged_state
from gptmini.paths import check_run_paths
from gptmini.stopping import Stopped, check_stop, stoppable
from gptmini.tasks import build_task
from gptmini.tasks.base import EvalResult, Task
from gptmini.text.tokenizer import tokenizer_from_description
from gptmini.train.device import DeviceChoice, choose_precision, device_name, peak_flops
from gptmini.train.distributed import (
    Ranks,
    any_rank,
    init_distributed,
    teardown_distributed,
)
from gptmini.train.estimate import check_run_size
from gptmini.train.meter import NonFiniteLoss, StepReporter, Throughput
from gptmini.train.memory import keep_freed_memory
from gptmini.train.optim import clip_gradients, lr_at, make_optimizer
from gptmini.train.plan import RunPlan, plan_run, resume_changes, resume_config
from gptmini.train.requests import Requests
from gptmini.train.setup import (
    build_model,
    choose_device,
    lora_config,
    run_dir_for,
    run_model_config,
    trained_form,
    write_run_config,
)
from gptmini.train_config import TrainConfig

Subscriber = Callable[[ev.Event], None]


@dataclass
class ModelSnapshot:
    """An independent copy of the weights at ``step``, in eval mode."""

    model: GPT
    tokenizer: Any
    step: int


def snapshot_of(model: GPT, model_config: ModelConfig, tokenizer: Any, step: int) -> ModelSnapshot:
    """An independent eval-mode copy of ``model``'s weights (built on the meta device: no second init), with
    any LoRA adapters folded in."""
    state, untied = merged_state(model)
    with torch.device("meta"):
        copy = GPT(model_config.with_overrides(tie_weights=False) if untied else model_config)
    copy = copy.to_empty(device=next(model.parameters()).device)
    copy.load_state_dict(state)
    copy.eval().requires_grad_(False)
    return ModelSnapshot(model=copy, tokenizer=tokenizer, step=step)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, CheckpointError):
        return "checkpoint"
    if isinstance(exc, (CorpusError, TokenizerError)):
        return "data"
    if isinstance(exc, (ConfigError, ValueError)):
        return "config"
    return "internal"


def fatal_error(exc: BaseException, *, step: int, batch_size: int, last_checkpoint: Path | None) -> ev.Error:
    """The one event that ends a run which failed: what happened and what to try."""
    if isinstance(exc, NonFiniteLoss):
        where = (f" The last good checkpoint is {last_checkpoint} (resume from it with a lower --lr)."
                 if last_checkpoint else " No checkpoint had been saved yet.")
        return ev.Error(message=f"loss became {exc.value} at step {exc.step}; training stopped without saving.{where} "
                                f"Try a lower --lr or a stronger --grad-clip.", error_kind="nan", step=exc.step,
                        fatal=True)
    if isinstance(exc, torch.OutOfMemoryError):
        return ev.Error(message=f"out of GPU memory at step {step + 1} (batch {batch_size}); try a smaller "
                                f"--batch-size (with --grad-accum to keep the global batch) or a shorter --context",
                        error_kind="oom", step=step, fatal=True)
    if isinstance(exc, GPTMiniError):
        return ev.Error(message=str(exc), error_kind=_error_kind(exc), step=step, fatal=True)
    return ev.Error(message=f"{type(exc).__name__}: {exc}", error_kind="internal", step=step, fatal=True)


def free_memory(reporter: StepReporter | None, optimizer: torch.optim.Optimizer | None) -> None:
    """After running out of GPU memory: drop the losses waiting to be reported, the gradients, the cache."""
    if reporter is not None:
        reporter.discard()
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_started_event(t: Trainer, resume: Checkpoint | None) -> ev.RunStarted:
    """What a run is, told once its folder is open."""
    cfg, plan, data = t.config, t.plan, t.task.summary
    return ev.RunStarted(
        run_name=t.run_name, run_dir=str(t.run_dir), model_config=t.model_config.to_dict(),
        n_params=t.model.num_params(), trainable_params=count_trainable(t.model), corpus=data.name,
        corpus_bytes=data.n_bytes, train_tokens=data.train_tokens, val_tokens=data.val_tokens, task=t.task.name,
        task_info={**t.task.describe(), **data.extra}, tokenizer=t.tokenizer.name, vocab_size=t.tokenizer.vocab_size,
        device=device_name(t.device), dtype=t.precision.dtype_name, batch_size=cfg.batch_size,
        grad_accum=cfg.grad_accum, world_size=t.ranks.world_size, context_length=t.model_config.context_length,
        epochs=plan.n_epochs, batches_per_epoch=plan.steps_per_epoch, total_steps=plan.total_steps,
        start_step=t.step, resumed_from=str(resume.path) if resume is not None else None, changed=t.changed,
        init_from=cfg.init_from, sample_prompt=t.task.sample_prompt, optimizer=plan.optimizer, compiled=plan.compile)


class Trainer:
    def __init__(self, config: TrainConfig, *, start_paused: bool = False):
        self.config = config
        # requests from other threads
        self._subscribers: list[Subscriber] = []
        self._pause = threading.Event()
        if start_paused:
            self._pause.set()
        self._stop = threading.Event()
        self._stop_save_reason: str | None = "stop"  # None: stop without saving
        self._requests = Requests(self._serve)
        self.state = RunState.CREATED
        # where the run stands
        self.step = 0
        self.epoch = 0  # 0-based epoch index
        self.batch_in_epoch = 0  # optimizer steps done inside the current epoch
        self.steps_since_save = 0
        self.best_val_loss = math.inf
        self.last_val_loss: float | None = None
        self.exception: BaseException | None = None
        self.final_metrics: dict[str, float] = {}  # the task's measures of the model a completed run ends with
        self.changed: dict[str, list[Any]] = {}  # options a resume changed: {name: [old, new]}
        self.init: InitWeights | None = None  # --init-from: the pretrained weights the run starts from
        self._base_keys: frozenset[str] = frozenset()  # the weights loaded from it (a partial save leaves them out)
        # built by run()
        self.ranks = Ranks()
        self.device = torch.device("cpu")
        self.precision: DeviceChoice | None = None
        self.task: Task | None = None  # what the run trains for: its data, batches, evaluation, samples
        self.tokenizer = None
        self.model_config: ModelConfig | None = None
        self.model: GPT | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.plan: RunPlan | None = None
        self.batches = None  # the task's training batches (a BatchSource)
        self.run_dir: Path | None = None
        self.run_name: str | None = None
        self.flops_per_token = 0.0
        self._fwd: torch.nn.Module | None = None  # the model as trained: compiled and/or wrapped in DDP
        self._saves = RunSaves(self._emit, self._save_failed)
        self._lock = RunLock(Path("."))
        self._metrics: MetricsWriter | None = None
        self._throughput = Throughput(0.0, None)
        self._reporter: StepReporter | None = None
        self._batch_iter = None
        self._prefault_sent = False
        self._winding_up = False

    # ------------------------------------------------------------ public API
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def pause(self) -> None:
        self._pause.set()

    def resume(self) -> None:
        self._pause.clear()

    def stop(self, save: bool = True, reason: str = "stop") -> None:
        """Finish the current step, save it (with ``reason``) if anything is unsaved unless ``save=False``, stop."""
        self._stop_save_reason = reason if save else None
        self._stop.set()
        if self.state == RunState.RUNNING:
            self._set_state(RunState.STOPPING)

    def request_save(self, reason: str = "manual") -> cf.Future:
        return self._requests.submit("save", reason)

    def request_restore(self, path: str | Path) -> cf.Future:
        return self._requests.submit("restore", Path(path))

    def snapshot(self, timeout: float = 60.0) -> ModelSnapshot:
        """A consistent copy of the current weights (taken between two steps)."""
        return self._requests.submit("snapshot", None).result(timeout=timeout)

    @property
    def is_active(self) -> bool:
        """True while the training loop runs (and serves requests between steps)."""
        return self._requests.loop_active.is_set()

    @property
    def last_loss(self) -> float | None:
        return self._reporter.last_loss if self._reporter is not None else None

    @property
    def partial_saves(self) -> bool:
        """Checkpoints hold only what trains: the frozen rest is the base weights file ``--init-from`` named."""
        return self.init is not None and any(not p.requires_grad for p in self.model.parameters())

    @property
    def tokens_seen(self) -> int:
        """Target tokens trained on so far (padding and ignored targets not counted), as last reported."""
        return self._reporter.tokens_seen if self._reporter is not None else 0

    @property
    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint of this run on disk (or the one it resumed from)."""
        return self._saves.last

    @property
    def unsaved(self) -> bool:
        """Ending the process now would lose trained weights or a save being written (False while the run loads,
        builds or compiles, and from a save until the next update: a stopped run may then end at once)."""
        return self.steps_since_save > 0 or self._saves.busy

    @property
    def winding_up(self) -> bool:
        """The run has left its loop (or its setup) and is writing its last records: let it end by itself."""
        return self._winding_up

    # ------------------------------------------------------------- requests
    def _serve(self, kind: str, arg: Any, fut: cf.Future) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            if self.model is None:
                raise GPTMiniError("the model is not loaded yet")
            if kind == "snapshot":
                fut.set_result(snapshot_of(self.model, self.model_config, self.tokenizer, self.step))
            elif kind == "save":
                fut.set_result(self._save(arg))
            elif kind == "restore":
                fut.set_result(self._restore(arg))
        except NonFiniteLoss:
            raise
        except Exception as exc:
            fut.set_exception(exc)
            if kind != "snapshot":
                self._emit(ev.Error(message=str(exc), error_kind=_error_kind(exc), step=self.step, fatal=False))

    def _serve_requests(self) -> None:
        self._requests.serve_waiting()
        self._saves.drain()

    def _emit(self, event: ev.Event) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:  # a broken subscriber must not kill training
                traceback.print_exc()

    def _set_state(self, state: RunState) -> None:
        if state != self.state:
            self.state = state
            self._emit(ev.StateChanged(state=state, step=self.step))

    # ------------------------------------------------------------------ run
    def run(self) -> ev.Finished:
        self._requests.loop_thread = threading.current_thread()
        t0 = time.time()
        self._set_state(RunState.STARTING)
        failure: Exception | None = None
        try:
            with stoppable(self._stop):  # reading, tokenising, downloading and evaluating end early on stop()
                self._setup()
                self._requests.loop_active.set()
                reason = self._loop()
        except Stopped:  # stopped before the run began: nothing was written
            reason = "stopped"
        except Exception as exc:  # every failure ends the run with one event that says what to do
            reason, failure = "error", exc
            if isinstance(exc, torch.OutOfMemoryError):
                free_memory(self._reporter, self.optimizer)
            elif not isinstance(exc, NonFiniteLoss):
                self.exception = exc
        finally:
            self._winding_up = True
            self._requests.loop_active.clear()
            self._saves.finish()
            self._requests.fail_waiting()
        if failure is not None:  # told after the saves in flight landed: it names the last one on disk
            self._emit(fatal_error(failure, step=self.step, batch_size=self.config.batch_size,
                                   last_checkpoint=self.last_checkpoint))
        self._set_state(RunState.ERROR if reason == "error" else RunState.FINISHED)
        finished = ev.Finished(step=self.step, reason=reason, loss=self.last_loss, val_loss=self.last_val_loss,
                               elapsed_s=time.time() - t0, tokens_seen=self.tokens_seen, metrics=self.final_metrics)
        self._emit(finished)
        if self._metrics is not None:
            self._metrics.close()
        self._lock.release()
        teardown_distributed(self.ranks)
        return finished

    # ---------------------------------------------------------------- setup
    def _setup(self) -> None:
        check_run_paths(self.config)
        resume = None
        if self.config.resume:
            resume = load_checkpoint(self.config.resume, device="cpu")
            self.changed = resume_changes(self.config, resume.manifest)
            self.config = resume_config(self.config, resume.manifest)
        cfg = self.config
        base = resume.manifest.get("base") if resume is not None else None
        if base is not None:  # a LoRA run's adapters sit on these weights
            self.init = open_base(base, resume.path)
        elif cfg.init_from and resume is None:  # fetched first: an offline download fails before any work
            self.init = open_init(cfg.init_from)
        check_stop()
        self.ranks = init_distributed(cfg.device)
        self.run_dir = run_dir_for(cfg, resume)
        self.run_name = self.run_dir.name
        self._lock = RunLock(self.run_dir)
        if self.ranks.is_main and self.run_dir.is_dir():  # refused before any work; a new folder: once made
            self._lock.acquire()
        self.device = choose_device(cfg, self.ranks)
        self.task = build_task(cfg)
        wanted = (tokenizer_from_description(resume.manifest["tokenizer"]) if resume
                  else self.init.tokenizer() if self.init else cfg.tokenizer_name)
        self.tokenizer = self.task.load(wanted, self._emit, resume.path.parent if resume else None)
        check_stop()
        self._build_model(resume)
        check_stop()  # the last moment a stop leaves nothing behind: the run folder is written next
        self._open_run_dir(resume)

    def _build_model(self, resume: Checkpoint | None) -> None:
        cfg, device, init = self.config, self.device, self.init
        model_cfg = run_model_config(cfg, self.tokenizer.vocab_size, resume, init)
        self.model_config = model_cfg = model_cfg.with_overrides(**self.task.model_overrides())
        self.precision = choose_precision(device, cfg.dtype, model_cfg)
        T = model_cfg.context_length
        self.batches = self.task.prepare(T, cfg.batch_size, seed=cfg.seed, rank=self.ranks.rank,
                                         world_size=self.ranks.world_size)
        if device.type == "cpu" and self.batches.same_shape:  # the same pages step after step (train/memory.py)
            keep_freed_memory()
        warning = check_run_size(model_cfg, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, device=device,
                                 half_precision=self.precision.autocast_dtype is not None)
        if warning:
            self._emit(ev.Warning(message=warning, step=self.step))
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        check_stop()
        self.model, self._base_keys = build_model(model_cfg, device, init, lora_config(cfg), self.task)
        check_stop()
        model = self.model
        self.plan = plan = plan_run(cfg, batches_per_epoch=self.batches.batches_per_epoch, device_type=device.type)
        self.optimizer = make_optimizer(model, plan.lr, cfg.weight_decay, betas=(cfg.beta1, cfg.beta2),
                                        device_type=device.type, kind=plan.optimizer)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.use_scaler)
        self._fwd = trained_form(model, plan.compile, self.ranks, device)
        self.flops_per_token = model.flops_per_token()
        self._throughput = Throughput(self.flops_per_token, peak_flops(device))
        self._reporter = StepReporter(self._emit, plan, device=device, world_size=self.ranks.world_size,
                                      throughput=self._throughput)
        if resume is not None:
            self._set_position(apply_training_state(
                resume, model=model, optimizer=self.optimizer, scaler=self.scaler, model_config=model_cfg,
                device=device, steps_per_epoch=plan.steps_per_epoch, base_keys=self._base_keys))
            self._saves.last = resume.path

    def _open_run_dir(self, resume: Checkpoint | None) -> None:
        self._saves.open(pin=self.device.type == "cuda")
        if self.ranks.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
            write_run_config(self.run_dir, config=self.config, model_config=self.model_config,
                             tokenizer=self.tokenizer, plan=self.plan, device=self.device,
                             dtype=self.precision.dtype_name, world_size=self.ranks.world_size, task=self.task,
                             resumed={"from": str(resume.path), "at_step": self.step, "changed": self.changed}
                             if resume is not None else None,
                             init=self.init.describe() if self.init else None)
            for name, document in self.task.run_files().items():
                write_json_atomic(self.run_dir / name, document)
            self._metrics = MetricsWriter(self.run_dir)
            self.subscribe(self._metrics)
        self._emit(run_started_event(self, resume))

    # ----------------------------------------------------------------- loop
    def _loop(self) -> str:
        plan = self.plan
        self._throughput.restart()  # setup time is not training time
        self._set_state(RunState.PAUSED if self._pause.is_set() else RunState.RUNNING)
        if self.init is not None and self.step == 0:
            self._evaluate()  # the pretrained model on this corpus: the curve's first point, and a sample
        while True:
            self._serve_requests()
            if self._stop.is_set():
                reason = "stopped"
                break
            if self._pause.is_set():
                self._wait_paused()
                continue
            if self.step >= plan.total_steps:
                reason = "completed"
                break
            self._train_step()
            if not self._prefault_sent:
                self._prefault_staging()
            self.step += 1
            self.batch_in_epoch += 1
            epoch_end = self.batch_in_epoch >= plan.steps_per_epoch
            if epoch_end:
                self.epoch += 1
                self.batch_in_epoch = 0
                self._batch_iter = None
            if self.step % plan.log_interval == 0 and any_rank(self._stop.is_set(), self.ranks, self.device):
                self._stop.set()  # under torchrun every rank stops at the same step
            improved = self._evaluate() if plan.evaluates_after(self.step, epoch_end) else False
            why = plan.save_reason(self.step, epoch_end, improved)
            if why is not None:
                self._save(why, best=improved)
        self._winding_up = True
        self._reporter.flush(wait=True)
        if reason == "stopped" and self._stop_save_reason and self.steps_since_save > 0:
            self._save(self._stop_save_reason)
        if reason == "completed" and self.ranks.is_main:
            self.model.eval()
            try:
                with torch.no_grad():
                    self.final_metrics = self.task.final_metrics(self.model, self.device, self.precision)
            except Stopped:  # asked to stop meanwhile: the run is complete and saved, its measures are skipped
                pass
            self.model.train()
        return reason

    def _wait_paused(self) -> None:
        self._reporter.flush(wait=True)
        self._set_state(RunState.PAUSED)
        t0 = time.perf_counter()
        while self._pause.is_set() and not self._stop.is_set():
            self._serve_requests()
            time.sleep(0.02)
        self._throughput.exclude(time.perf_counter() - t0)
        if not self._stop.is_set():
            self._set_state(RunState.RUNNING)

    def _next_micro_batch(self) -> Batch:
        if self._batch_iter is None:
            start = self.batch_in_epoch * self.config.grad_accum
            self._batch_iter = iter(self.batches.epoch_batches(self.epoch, start_batch=start))
        return next(self._batch_iter).to(self.device)

    def _train_step(self) -> None:
        """One optimizer step: ``grad_accum`` micro-batches, clip, update. Losses stay on the device."""
        cfg, model, scaler = self.config, self._fwd, self.scaler
        model.train()
        lr = lr_at(self.step, self.plan.lr, self.plan.min_lr, self.plan.warmup_steps, self.plan.decay_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum, n_targets = None, 0
        batch = self._next_micro_batch()
        for micro in range(cfg.grad_accum):
            last = micro == cfg.grad_accum - 1
            model.require_backward_grad_sync = last  # DDP: all-reduce gradients on the last micro-batch only
            with self.precision.autocast():
                _, loss = model(batch.x, batch.y)  # the mean over targets that are not IGNORE_INDEX
            n_targets += batch.n_targets
            if not last:  # prefetch the next micro-batch while the device works
                batch = self._next_micro_batch()
            scaler.scale(loss / cfg.grad_accum).backward()  # the scaler is a pass-through unless fp16
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        scaler.unscale_(self.optimizer)
        gnorm = clip_gradients(self.model, cfg.grad_clip, self.device)
        self.steps_since_save += 1  # counted before the weights change: ``unsaved`` is never False after
        scaler.step(self.optimizer)
        scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self._reporter.add(self.step + 1, self.epoch + 1, self.batch_in_epoch + 1, lr,
                           loss_sum / cfg.grad_accum, gnorm.detach(), n_targets)

    # ----------------------------------------------------------- evaluation
    def _evaluate(self) -> bool:
        """Validation loss (rank 0), a sample; returns True when val loss improved."""
        self._reporter.flush(wait=True)
        t0 = time.perf_counter()
        improved = False
        if self.ranks.is_main:
            self.model.eval()
            try:
                improved = self._report_eval(self.task.evaluate(self.model, self.device, self.precision))
            except Stopped:  # a stop comes first: the loop saves and ends without this evaluation
                pass
            finally:
                self.model.train()
        self._throughput.exclude(time.perf_counter() - t0)
        return improved

    def _report_eval(self, result: EvalResult) -> bool:
        val = result.val_loss
        improved = val < self.best_val_loss
        if improved:
            self.best_val_loss = val
        self.last_val_loss = val
        epoch = self.epoch if self.batch_in_epoch == 0 and self.step > 0 else self.epoch + 1
        self._emit(ev.Eval(step=self.step, epoch=epoch, tokens_seen=self.tokens_seen, val_loss=val,
                           val_ppl=math.exp(min(val, 700)), train_loss=result.train_loss, best=improved,
                           metrics=result.metrics))
        for event in self.task.samples(self.model, self.step):
            self._emit(event)
        return improved

    # ---------------------------------------------------------- checkpoints
    def _position(self) -> ResumePoint:
        return ResumePoint(step=self.step, epoch=self.epoch, batch=self.batch_in_epoch,
                           tokens_seen=self.tokens_seen, steps_per_epoch=self.plan.steps_per_epoch,
                           best_val_loss=self.best_val_loss, val_loss=self.last_val_loss, train_loss=self.last_loss)

    def _set_position(self, point: ResumePoint) -> None:
        self.step, self.epoch, self.batch_in_epoch = point.step, point.epoch, point.batch
        self.best_val_loss = point.best_val_loss
        self.last_val_loss = point.val_loss
        self._reporter.last_loss, self._reporter.tokens_seen = point.train_loss, point.tokens_seen

    def _prefault_staging(self) -> None:
        """Once the optimizer state exists, let the writer map a staging buffer set ahead of the first save."""
        self._prefault_sent = True
        if self.ranks.is_main:
            self._saves.prefault(live_state(self.model, self.optimizer, self.partial_saves)[0])

    def _save(self, reason: str, best: bool = False) -> Path | None:
        """Copy the state to host memory now; write it on the writer thread."""
        self._reporter.flush(wait=True)  # never save weights that already produced a NaN (all ranks)
        self.steps_since_save = 0
        if not self.ranks.is_main:
            return None
        t0 = time.perf_counter()
        sources, opt_meta = live_state(self.model, self.optimizer, self.partial_saves)
        manifest = training_manifest(
            self._position(), model_config=self.model_config, tokenizer=self.tokenizer,
            train_config={**self.config.to_dict(), "optimizer": self.plan.optimizer}, optimizer_meta=opt_meta,
            scaler_state=self.scaler.state_dict(), schedule=self.plan.schedule(), corpus=self.task.summary.name,
            task=self.task.describe(), lora=lora.to_dict() if (lora := lora_config(self.config)) else None,
            base=self.init.describe() if self.partial_saves else None,
            n_params=self.model.num_params(), data_seed=self.config.seed)
        path = self._saves.submit(sources, rng_tensors(self.device), run_dir=self.run_dir, step=self.step,
                                  manifest=manifest, best=best, keep_last=self.config.keep_last, reason=reason,
                                  blocked=time.perf_counter() - t0)
        self._throughput.exclude(time.perf_counter() - t0)
        return path

    def _save_failed(self) -> None:
        self.steps_since_save = max(self.steps_since_save, 1)

    def _restore(self, path: Path) -> int:
        self._reporter.flush(wait=True)
        ckpt = load_checkpoint(path, device="cpu")
        if ckpt.manifest.get("tokenizer") != self.tokenizer.describe():
            raise CheckpointError(f"{ckpt.path} was trained with another tokenizer or vocabulary")
        self._set_position(apply_training_state(
            ckpt, model=self.model, optimizer=self.optimizer, scaler=self.scaler, model_config=self.model_config,
            device=self.device, steps_per_epoch=self.plan.steps_per_epoch, base_keys=self._base_keys))
        self._saves.last = ckpt.path
        self._batch_iter = None
        self.steps_since_save = 0
        self._emit(ev.CheckpointRestored(step=self.step, epoch=self.epoch + 1, tokens_seen=self.tokens_seen,
                                         path=str(ckpt.path)))
        return self.step

