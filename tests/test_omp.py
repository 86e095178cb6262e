"""Inference beside training: a thread can limit its own torch parallelism without touching training's."""

from __future__ import annotations

import threading

import pytest
import torch

from gptmini.train.omp import limit_this_thread


def test_limit_applies_to_the_calling_thread_only():
    before = torch.get_num_threads()
    seen: dict[str, object] = {}

    def worker() -> None:
        seen["found"] = limit_this_thread(1)
        seen["inside"] = torch.get_num_threads()
        x = torch.randn(128, 128)
        seen["result_ok"] = bool(torch.isfinite(x @ x).all())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    if not seen["found"]:
        pytest.skip("no OpenMP runtime found next to torch (nothing to limit)")
    assert seen["inside"] == 1 and seen["result_ok"]
    assert torch.get_num_threads() == before  # the training thread keeps all of its threads
