import math

import pytest
import torch

from gptmini.model.config import ModelConfig
from gptmini.model.gpt import GPT
from gptmini.presets import PRESETS, preset_config


def tiny(**kw):
    base = dict(vocab_size=70, context_length=24, n_layers=2, n_heads=2, d_model=32)
    base.update(kw)
    return ModelConfig(**base)


def test_gpt2_124m_parameter_count_matches_openai():
    with torch.device("meta"):
        m = GPT(preset_config("gpt2-124m"))
    assert m.num_params() == 124_439_808


def test_untied_head_adds_a_matrix():
    with torch.device("meta"):
        tied = GPT(tiny())
        untied = GPT(tiny(tie_weights=False))
    assert untied.num_params() - tied.num_params() == 70 * 32


def test_vocab_is_padded_internally_but_logits_and_loss_are_not():
    torch.manual_seed(0)
    m = GPT(tiny(vocab_size=1030))
    assert m.wte.weight.shape[0] == 1088 and GPT(tiny()).wte.weight.shape[0] == 70  # small vocab: no padding
    x, y = torch.randint(0, 1030, (2, 5)), torch.randint(0, 1030, (2, 5))
    logits, _ = m(x)
    assert logits.shape == (2, 5, 1030)
    _, loss = m(x, y)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 1030), y.reshape(-1))
    torch.testing.assert_close(loss, expected)  # padding columns take no probability
    loss.backward()
    assert m.wte.weight.grad[1030:].abs().max() == 0  # padding rows never learn


def test_initial_loss_is_about_log_vocab():
    torch.manual_seed(0)
    m = GPT(tiny())
    x = torch.randint(0, 70, (4, 24))
    y = torch.randint(0, 70, (4, 24))
    _, loss = m(x, y)
    assert abs(loss.item() - math.log(70)) < 0.3


def test_gpt2_init_scales_residual_projections():
    torch.manual_seed(0)
    m = GPT(tiny(d_model=256, n_heads=4, n_layers=8))
    std_proj = m.h[0].attn.c_proj.weight.std().item()
    std_fc = m.h[0].mlp.c_fc.weight.std().item()
    assert std_fc == pytest.approx(0.02, rel=0.05)
    assert std_proj == pytest.approx(0.02 / math.sqrt(16), rel=0.08)


def test_kv_cache_matches_full_forward():
    torch.manual_seed(0)
    m = GPT(tiny()).eval()
    x = torch.randint(0, 70, (2, 24))
    full, _ = m(x)
    cache = m.new_cache(batch=2)
    parts = [m(x[:, :9], cache=cache)[0], m(x[:, 9:13], cache=cache)[0]]
    for t in range(13, 24):
        parts.append(m(x[:, t : t + 1], cache=cache)[0])
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_left_padding_with_positions_and_a_mask_changes_no_real_token():
    """Rows of different lengths in one batch (batched generation): each row left-padded, its positions from 0
    at its first real token, padding masked out of every view; then a step through the cache."""
    torch.manual_seed(0)
    m = GPT(tiny()).eval()
    rows = [torch.randint(0, 70, (n,)) for n in (9, 4, 1)]
    width = 9
    idx = torch.stack([torch.cat([torch.zeros(width - len(r), dtype=torch.long), r]) for r in rows])
    pads = torch.tensor([[width - len(r)] for r in rows])
    cols = torch.arange(width)
    valid = cols >= pads
    mask = (cols[None, :] <= cols[:, None]) & valid[:, None, :] | torch.eye(width, dtype=torch.bool)
    cache = m.new_cache(batch=3)
    logits, _ = m(idx, cache=cache, positions=(cols - pads).clamp(min=0), attn_mask=mask[:, None])
    nxt = torch.tensor([[5], [6], [7]])
    step, _ = m(nxt, cache=cache, positions=pads.new_tensor([[len(r)] for r in rows]),
                attn_mask=torch.cat([valid, torch.ones(3, 1, dtype=torch.bool)], 1)[:, None, None])
    for i, r in enumerate(rows):
        alone, _ = m(torch.cat([r, nxt[i]])[None])
        torch.testing.assert_close(logits[i, width - len(r):], alone[0, :-1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(step[i, 0], alone[0, -1], atol=1e-5, rtol=1e-5)


def test_sequence_longer_than_context_is_a_clear_error():
    m = GPT(tiny())
    with pytest.raises(ValueError, match="longer than the context length 24"):
        m(torch.zeros(1, 25, dtype=torch.long))


def test_loss_falls_when_training_a_tiny_model():
    torch.manual_seed(0)
    m = GPT(tiny())
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    x = torch.randint(0, 70, (8, 24))
    losses = []
    for _ in range(60):
        _, loss = m(x, x.roll(-1, dims=1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.3


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(d_model=30, n_heads=4), "d_model"),
        (dict(n_layers=0), "n_layers"),
        (dict(n_heads=-1), "n_heads"),
        (dict(context_length=0), "context_length"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(dropout=1.5), "dropout"),
        (dict(d_model=32.5), "d_model"),
    ],
)
def test_config_validation_names_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        tiny(**kw)


def test_preset_override_field_by_field():
    cfg = preset_config("gpt2-124m", n_layers=2, context_length=64)
    assert (cfg.n_layers, cfg.n_heads, cfg.context_length) == (2, 12, 64)
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("gpt5")
    assert "cpu-demo" in PRESETS and "gpt2-124m" in PRESETS


def test_short_bf16_training_attention_takes_the_math_kernel_on_a_cpu():
    """PyTorch's CPU flash kernel trains short bf16 sequences slower than its math path (model.gpt's note); the
    rule picks the math path for exactly those and leaves every other case to PyTorch."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from gptmini.model.gpt import CPU_BF16_FLASH_MIN_TOKENS, attention_kernels

    def q(tokens, dtype=torch.bfloat16, grad=True):
        return torch.zeros(2, 2, tokens, 8, dtype=dtype, requires_grad=grad)

    def picks(t):
        return type(attention_kernels(t)) is type(sdpa_kernel(SDPBackend.MATH))

    assert picks(q(70)) and picks(q(CPU_BF16_FLASH_MIN_TOKENS - 1))
    assert not picks(q(CPU_BF16_FLASH_MIN_TOKENS))  # long sequences: flash is faster
    assert not picks(q(70, torch.float32))  # fp32: flash is as fast or faster
    assert not picks(q(70, grad=False))  # inference: flash's forward is faster

    torch.manual_seed(0)
    m = GPT(tiny(vocab_size=70)).train()
    x, y = torch.randint(0, 70, (2, 24)), torch.randint(0, 70, (2, 24))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = m(x, y)
    loss.backward()  # the math path trains (a loss and gradients come out)
    assert torch.isfinite(loss) and m.h[0].attn.c_attn.weight.grad.abs().sum() > 0
