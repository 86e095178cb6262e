"""What a run trains for, one module per task on one seam (``base.Task``): ``pretrain`` (next tokens of a
corpus, the book's chapter 5), ``instruct`` (answers to instructions, chapter 7), ``classify`` (a label for
a text, chapter 6). The registry names each task's class by module so that option checks do not
import torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gptmini.tasks.base import Task
    from gptmini.train_config import TrainConfig

TASKS: dict[str, str] = {  # --task NAME -> "module:Class"
    "pretrain": "gptmini.tasks.pretrain:PretrainTask",
    "instruct": "gptmini.tasks.instruct:InstructTask",
    "classify": "gptmini.tasks.classify:ClassifyTask",
}


def build_task(config: TrainConfig) -> Task:
    """The task a run's options ask for."""
    module, cls = TASKS[config.task].split(":")
    return getattr(importlib.import_module(module), cls)(config)
