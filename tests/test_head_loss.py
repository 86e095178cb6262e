"""The output layer and its cross-entropy a block of rows at a time (model/head_loss.py) give the loss and the
gradients of the plain ``F.linear`` + ``F.cross_entropy``: equal to fp32 rounding in fp32, and as close to the
exact values as the plain path under bf16 autocast."""

import pytest
import torch
import torch.nn.functional as F

from gptmini.data.batch import IGNORE_INDEX
from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT
from gptmini.model.head_loss import linear_cross_entropy
from gptmini.model.lora import LoRAConfig, apply_lora

V, VP, D, N = 1000, 1024, 48, 150  # a padded vocabulary; 150 rows are not a multiple of the blocks below


def operands(seed: int = 0, dtype=torch.float32):
    """Inputs that bf16 represents exactly (so the bf16 paths differ from the exact values only by their own
    rounding), some targets ignored, and a LoRA term's two factors."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g).bfloat16().to(dtype)
    w = (torch.randn(VP, D, generator=g) * 0.2).bfloat16().to(dtype)
    low_x = torch.randn(N, 4, generator=g).bfloat16().to(dtype)
    low_w = (torch.randn(VP, 4, generator=g) * 0.1).bfloat16().to(dtype)
    t = torch.randint(0, V, (N,), generator=g)
    t[::7] = IGNORE_INDEX
    return [v.requires_grad_() for v in (x, w, low_x, low_w)], t


def plain(x, w, low_x, low_w, t):
    logits = F.linear(x, w) + low_x @ low_w.t()
    return F.cross_entropy(logits.float()[:, :V], t, ignore_index=IGNORE_INDEX)


def blocked(chunk):
    return lambda x, w, low_x, low_w, t: linear_cross_entropy(x, w, t, V, (low_x, low_w), chunk=chunk)


def loss_and_grads(fn, dtype=torch.float32, autocast=False):
    inputs, t = operands(dtype=dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = fn(*inputs, t)
    loss.backward()
    return [loss.detach().double()] + [v.grad.double() for v in inputs]


def worst_relative_error(got, exact):
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, exact))


@pytest.mark.parametrize("chunk", [1, 32, 37, 1000])
def test_fp32_loss_and_gradients_equal_the_plain_path(chunk):
    got, want = loss_and_grads(blocked(chunk)), loss_and_grads(plain)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_bf16_autocast_is_as_close_to_the_exact_values_as_the_plain_path():
    exact = loss_and_grads(plain, dtype=torch.float64)
    ours = worst_relative_error(loss_and_grads(blocked(32), autocast=True), exact)
    theirs = worst_relative_error(loss_and_grads(plain, autocast=True), exact)
    assert ours < 2 ** -7  # bf16 rounding of the logits' gradient (8 bits)
    assert ours < 1.5 * theirs


def test_padding_columns_and_ignored_rows_get_no_gradient():
    (x, w, low_x, low_w), t = operands()
    linear_cross_entropy(x, w, t, V, (low_x, low_w), chunk=32).backward()
    assert w.grad[V:].abs().max() == 0 and low_w.grad[V:].abs().max() == 0
    ignored = t == IGNORE_INDEX
    assert x.grad[ignored].abs().max() == 0 and low_x.grad[ignored].abs().max() == 0
    assert x.grad[~ignored].abs().min() > 0


def test_without_gradients_the_loss_is_the_same():
    (x, w, low_x, low_w), t = operands()
    with torch.no_grad():
        evaluated = linear_cross_entropy(x, w, t, V, (low_x, low_w), chunk=32)
    trained = linear_cross_entropy(x, w, t, V, (low_x, low_w), chunk=32)
    assert trained.requires_grad and not evaluated.requires_grad
    torch.testing.assert_close(evaluated, trained.detach(), rtol=0, atol=0)


def model_loss_and_grads(model, x, y, plain_loss: bool):
    model.zero_grad(set_to_none=True)
    if plain_loss:  # the inference logits (the real vocabulary, LoRA included) and PyTorch's cross-entropy
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)
    else:
        _, loss = model(x, y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("lora", [False, True])
def test_the_models_training_loss_is_the_cross_entropy_of_its_logits(lora):
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=1030, context_length=16, n_layers=1, n_heads=2, d_model=32,
                            tie_weights=False))
    if lora:
        apply_lora(model, LoRAConfig(rank=2, alpha=2.0, targets="all"))
        torch.nn.init.normal_(model.head_lora.lora_B, std=0.1)  # a non-zero update, so that it is tested
    x, y = torch.randint(0, 1030, (3, 16)), torch.randint(0, 1030, (3, 16))
    y[0, :5] = IGNORE_INDEX
    loss, grads = model_loss_and_grads(model, x, y, plain_loss=False)
    want_loss, want_grads = model_loss_and_grads(model, x, y, plain_loss=True)
    torch.testing.assert_close(loss, want_loss)
    assert grads.keys() == want_grads.keys() and ("head_lora.lora_B" in grads) == lora
    for name, grad in grads.items():
        torch.testing.assert_close(grad, want_grads[name], rtol=1e-4, atol=1e-6, msg=name)
