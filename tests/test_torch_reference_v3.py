"""Self-checks of the DINOv3 and conv-modulation-stack parts of the PyTorch reference (no skipclick_jax involved).

The arithmetic follows /work/notes/dinov3_convstack_spec.md (§A, §B, §D, §E); hand-written recomputations here
are independent transcriptions of those formulas.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from tests.released_keys import released_keys  # noqa: E402
from tests.torch_reference import (  # noqa: E402
    DINOV3_REPO_PATH,
    ReferenceDinoV3,
    ReferenceModulationStack,
    ReferenceSkipClick,
    RopeEmbedding,
    default_periods,
    dinov3_kwargs,
    load_original_checkpoint,
    randomize_,
    save_dinov3_hub_checkpoint,
    save_original_checkpoint,
)

pytestmark = pytest.mark.torch

# §B.9: the bf16-rounded periods 100^(k/16) stored in the released ViT-B/16 weights (head dim 64).
RELEASED_PERIODS_D64 = [1.0, 1.3359375, 1.78125, 2.375, 3.15625, 4.21875, 5.625, 7.5, 10.0, 13.3125, 17.75, 23.75,
                        31.625, 42.25, 56.25, 75.0]

TINY_DINO3 = dict(embed_dim=64, depth=4, num_heads=4, ffn="mlp", ffn_ratio=4.0)  # head dim 16, 4 periods
COMMON = dict(
    taps=(0, 1, 2, 3),
    use_intermediate=(0, 1, 2, 3),
    img_size=112,
    fusion_depth=2,
    fusion_heads=4,
    neck_out_dims=(8, 16, 24, 32),
    head_channels=16,
)
TINY_V3 = dict(dinov3=TINY_DINO3, **COMMON)  # 112 px / 16 = 7x7 grid
TINY_CONV = dict(dinov2=dict(embed_dim=48, depth=4, num_heads=4, pos_grid=9), use_conv_stack=True, **COMMON)


def tiny(kind, seed=0, **overrides):
    kwargs = {**(TINY_V3 if kind == "dinov3" else TINY_CONV), **overrides}
    return randomize_(ReferenceSkipClick(**kwargs), seed)


def tiny_dino3(seed=0, **overrides):
    return randomize_(ReferenceDinoV3(**{**TINY_DINO3, **overrides}), seed).eval()


def tiny_inputs(batch=2, size=112, seed=0):
    g = torch.Generator().manual_seed(seed)
    x4 = torch.rand(batch, 4, size, size, generator=g)
    pts = torch.full((batch, 4, 3), -1.0, dtype=torch.float64)
    pts[:, 0] = torch.tensor([30.25, 40.5, 0.0], dtype=torch.float64)
    pts[:, 2] = torch.tensor([size - 20.0, 17.75, 1.0], dtype=torch.float64)
    return x4, pts


def _rows(model):
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]


# --------------------------------------------------------------------------------------------- keys / configs


@pytest.mark.parametrize(
    ("kind", "kwargs", "n_keys", "n_values"),
    [
        ("dinov3", dict(dinov3=dinov3_kwargs("dinov3_vitb16")), 301, 152_232_081),
        ("convstack", dict(use_conv_stack=True), 320, 150_519_425),
    ],
)
def test_full_size_state_dict_matches_released_key_list(kind, kwargs, n_keys, n_values):
    released = released_keys(kind)
    with torch.device("meta"):  # shapes only
        model = ReferenceSkipClick(**kwargs)
    got = _rows(model)
    assert len(got) == n_keys
    assert got == [(k, s, d) for k, s, d, _ in released]  # same keys, order, shapes, float32
    assert sum(math.prod(s) for _, s, _ in got) == n_values
    buffers = {name for name, _ in model.named_buffers()}
    assert buffers == {k for k, _, _, is_buffer in released if is_buffer}
    assert len(buffers) == (13 if kind == "dinov3" else 0)


def test_dinov3_named_configs():
    b16 = dinov3_kwargs("dinov3_vitb16")
    assert ReferenceDinoV3(**{**b16, "depth": 1}).hparams == {**b16, "depth": 1}
    assert ReferenceDinoV3().hparams == b16  # the defaults are ViT-B/16
    # SwiGLU hidden width: 2/3 of int(C·ratio), rounded up to a multiple of 8 (§B.1).
    with torch.device("meta"):
        models = {n: ReferenceDinoV3(**dinov3_kwargs(n)) for n in ("vits16plus", "vitl16plus", "vith16plus")}
        s16 = ReferenceDinoV3(**dinov3_kwargs("vits16"))
        sat = ReferenceDinoV3(**dinov3_kwargs("vitl16", weights="SAT493M"))
        lvd = ReferenceDinoV3(**dinov3_kwargs("vitl16"))
        b7 = ReferenceDinoV3(**{**dinov3_kwargs("vit7b16"), "depth": 1})
    for name, hidden in (("vits16plus", 1536), ("vitl16plus", 4096), ("vith16plus", 5120)):
        sd = models[name].state_dict()
        c = dinov3_kwargs(name)["embed_dim"]
        assert sd["blocks.0.mlp.w1.weight"].shape == sd["blocks.0.mlp.w2.weight"].shape == (hidden, c)
        assert sd["blocks.0.mlp.w3.weight"].shape == (c, hidden) and "blocks.0.mlp.fc1.weight" not in sd
    assert s16.state_dict()["blocks.11.mlp.fc1.weight"].shape == (1536, 384)
    assert s16.state_dict()["rope_embed.periods"].shape == (16,)
    assert len(models["vith16plus"].blocks) == 32
    assert "local_cls_norm.weight" in sat.state_dict() and "local_cls_norm.weight" not in lvd.state_dict()
    assert list(sat.state_dict())[-2:] == ["local_cls_norm.weight", "local_cls_norm.bias"]
    sd7 = b7.state_dict()  # no qkv bias => no bias_mask; head dim 128; SwiGLU aligned to 64
    assert "blocks.0.attn.qkv.bias" not in sd7 and "blocks.0.attn.qkv.bias_mask" not in sd7
    assert sd7["rope_embed.periods"].shape == (32,) and sd7["blocks.0.mlp.w1.weight"].shape == (8192, 4096)
    assert "local_cls_norm.bias" in sd7
    with pytest.raises(ValueError):
        dinov3_kwargs("vitb14")


def test_default_buffers_and_randomize_keeps_them():
    torch.testing.assert_close(default_periods(64), torch.tensor(RELEASED_PERIODS_D64), rtol=0, atol=0)
    model = tiny_dino3(seed=1)
    sd = model.state_dict()
    assert torch.equal(sd["rope_embed.periods"], default_periods(16))
    assert default_periods(16).tolist() == [1.0, 3.15625, 10.0, 31.625]  # 100^(k/4) in bf16
    canonical = torch.cat([torch.ones(64), torch.zeros(64), torch.ones(64)])
    for i in range(4):
        assert torch.equal(sd[f"blocks.{i}.attn.qkv.bias_mask"], canonical)
        k_bias = sd[f"blocks.{i}.attn.qkv.bias"][64:128]
        assert (k_bias != 0).all()  # randomised, so the mask has something to mask
    other = tiny_dino3(seed=2).state_dict()
    for key, t in sd.items():
        if key.endswith(("periods", "bias_mask")):
            continue
        assert not (t == 0).any() and not (t == 1).any(), key
        assert not torch.equal(t, other[key]), f"{key} ignores the seed"
    gamma = sd["blocks.0.ls1.gamma"]
    assert gamma.min() >= 0.2 and gamma.max() <= 1.2
    assert ReferenceDinoV3(**TINY_DINO3).blocks[0].ls1.gamma.eq(1e-5).all()  # hub layerscale_init


# --------------------------------------------------------------------------------------------- RoPE


def _hand_angles(h, w, periods, scale=1.0):
    """§B.4 step by step in numpy float32: coords, (2π·c)/p, [y, x] layout tiled twice."""
    p = np.asarray(periods, np.float32)
    ys = (np.arange(h, dtype=np.float32) + np.float32(0.5)) / np.float32(h)
    xs = (np.arange(w, dtype=np.float32) + np.float32(0.5)) / np.float32(w)
    rows = []
    for i in range(h):
        for j in range(w):
            cy = (np.float32(2) * ys[i] - np.float32(1)) * np.float32(scale)
            cx = (np.float32(2) * xs[j] - np.float32(1)) * np.float32(scale)
            ay = (np.float32(2 * math.pi) * cy) / p
            ax = (np.float32(2 * math.pi) * cx) / p
            rows.append(np.concatenate([ay, ax, ay, ax]))
    return np.asarray(rows, np.float32)


def _hand_rope(h, w, periods, scale=1.0):
    """(sin, cos) in float64 of the float32 angles."""
    angles = _hand_angles(h, w, periods, scale).astype(np.float64)
    return np.sin(angles), np.cos(angles)


@pytest.mark.parametrize("scale", [None, 1.5])
def test_rope_tables_hand_computed(scale):
    rope = RopeEmbedding(64, num_heads=4)  # head dim 16 -> 4 periods
    sin, cos = rope(2, 3, scale)
    assert sin.shape == cos.shape == (6, 16) and sin.dtype == torch.float32
    s = 1.0 if scale is None else scale
    # The float32 angles bit for bit: fp32(2π)·c rounded, then ÷ period (§F.4).
    np.testing.assert_array_equal(rope.angles(4, 5, scale).numpy(), _hand_angles(4, 5, rope.periods.tolist(), s))
    want_sin, want_cos = _hand_rope(2, 3, rope.periods.tolist(), s)
    np.testing.assert_allclose(sin.numpy(), want_sin, atol=2e-7, rtol=0)
    np.testing.assert_allclose(cos.numpy(), want_cos, atol=2e-7, rtol=0)
    # Spot value: token (row 1, col 0), first x frequency: x = (0.5/3)·2 − 1 = −2/3, period 1 -> angle −4π/3·s.
    assert abs(float(sin[3, 4]) - math.sin(-4 * math.pi / 3 * s)) < 1e-6
    assert abs(float(sin[3, 0]) - math.sin(2 * math.pi * 0.5 * s)) < 1e-6  # y = (1.5/2)·2 − 1 = 0.5
    # A swapped [x, y] layout would be far off.
    swapped = np.concatenate([want_sin[:, 4:8], want_sin[:, :4]] * 2, axis=1)
    assert np.abs(swapped - sin.numpy()).max() > 0.1


def _hand_attention(attn, x, sin, cos, prefix):
    """Self-attention written out per head in float64: masked k bias, split-halves RoPE after `prefix` tokens."""
    x = x.double()
    w, b = attn.qkv.weight.double(), (attn.qkv.bias * attn.qkv.bias_mask).double()
    qkv = x @ w.T + b
    n, c = x.shape[1], x.shape[2]
    heads, d = attn.num_heads, c // attn.num_heads
    sin, cos = torch.as_tensor(sin).double(), torch.as_tensor(cos).double()
    outs = []
    for hd in range(heads):
        q = qkv[..., hd * d : (hd + 1) * d].clone()
        k = qkv[..., c + hd * d : c + (hd + 1) * d].clone()
        v = qkv[..., 2 * c + hd * d : 2 * c + (hd + 1) * d]
        for t in (q, k):
            pt = t[:, prefix:].clone()
            lo, hi = pt[..., : d // 2], pt[..., d // 2 :]
            t[:, prefix:, : d // 2] = lo * cos[:, : d // 2] - hi * sin[:, : d // 2]
            t[:, prefix:, d // 2 :] = hi * cos[:, d // 2 :] + lo * sin[:, d // 2 :]
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)
        outs.append(att @ v)
    out = torch.cat(outs, dim=-1)
    assert out.shape[1] == n
    return out @ attn.proj.weight.double().T + attn.proj.bias.double()


def test_rope_attention_matches_hand_written_and_skips_prefix():
    model = tiny_dino3(seed=3)
    attn = model.blocks[0].attn
    sin, cos = _hand_rope(2, 3, model.rope_embed.periods.tolist(), 1.0)
    x = torch.randn(2, 5 + 6, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = attn(x, model.rope_embed(2, 3)).double()
        want = _hand_attention(attn, x, sin, cos, prefix=5)
        # The same with the 5 prefix tokens rotated too (by the first 5 patch angles): must differ.
        also_rotated = _hand_attention(attn, x, *[np.concatenate([a[:5], a], 0) for a in (sin, cos)], prefix=0)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=0)
    assert (also_rotated - want).abs().max() > 1e-3


def test_masked_k_bias_has_no_effect_unless_unmasked():
    model = tiny_dino3(seed=4)
    x = torch.randn(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model.get_intermediate_layers(x, n=[1, 3])
        for blk in model.blocks:
            blk.attn.qkv.bias[64:128] += 3.0  # change only the k part
        masked = model.get_intermediate_layers(x, n=[1, 3])
        for blk in model.blocks:
            blk.attn.qkv.bias_mask.fill_(1.0)
        unmasked = model.get_intermediate_layers(x, n=[1, 3])
    assert all(torch.equal(a, b) for a, b in zip(base, masked, strict=True))
    assert all((a - b).abs().max() > 1e-3 for a, b in zip(base, unmasked, strict=True))


def test_dinov3_taps_normed_patch_tokens_and_prefix():
    model = tiny_dino3(seed=5)
    x = torch.randn(2, 3, 48, 80, generator=torch.Generator().manual_seed(2))  # 3x5 grid
    with torch.no_grad():
        taps = model.get_intermediate_layers(x, n=[0, 2])
        again = model.get_intermediate_layers(x, n=[0, 2])
        raw = model.get_intermediate_layers(x, n=[0, 2], norm=False)
        last2 = model.get_intermediate_layers(x, n=2, reshape=True)
        # by hand: tokens, blocks, final LayerNorm (eps 1e-5), drop cls + 4 storage tokens
        tok = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        seq = torch.cat([model.cls_token.expand(2, -1, -1), model.storage_tokens.expand(2, -1, -1), tok], 1)
        outs = []
        for blk in model.blocks:
            seq = blk(seq, model.rope_embed(3, 5))
            outs.append(seq)
        ln = F.layer_norm(outs[2], (64,), model.norm.weight, model.norm.bias, eps=1e-5)
    assert [t.shape for t in taps] == [(2, 15, 64)] * 2
    assert all(torch.equal(a, b) for a, b in zip(taps, again, strict=True))  # eval mode is deterministic
    assert torch.equal(raw[1], outs[2][:, 5:])
    assert torch.equal(taps[1], ln[:, 5:])
    assert last2[0].shape == (2, 64, 3, 5)
    torch.testing.assert_close(last2[0], model.norm(outs[2])[:, 5:].transpose(1, 2).reshape(2, 64, 3, 5))
    with pytest.raises(ValueError):
        model.get_intermediate_layers(x, n=[1, 9])


def test_train_mode_rope_rescale():
    model = tiny_dino3(seed=6)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ev = model.get_intermediate_layers(x, n=[0, 3])
        assert model.last_rope_rescale_factors is None
        model.train()
        model.rope_rescale_factors = [1.0] * 4
        ones = model.get_intermediate_layers(x, n=[0, 3])
        assert model.last_rope_rescale_factors == [1.0] * 4
        model.rope_rescale_factors = [1.0, 1.0, 1.0, 2.0]
        last_two = model.get_intermediate_layers(x, n=[0, 3])
        model.rope_rescale_factors = [2.0] * 4
        twos = model.get_intermediate_layers(x, n=[0, 3])
        model.rope_rescale_factors = [2.0] * 3
        with pytest.raises(ValueError):
            model.get_intermediate_layers(x, n=[0, 3])
        model.rope_rescale_factors = None
        torch.manual_seed(0)
        r1 = model.get_intermediate_layers(x, n=[0, 3])
        f1 = model.last_rope_rescale_factors
        torch.manual_seed(0)
        r2 = model.get_intermediate_layers(x, n=[0, 3])
        torch.manual_seed(1)
        r3 = model.get_intermediate_layers(x, n=[0, 3])
        f3 = model.last_rope_rescale_factors
        model.eval()
        ev2 = model.get_intermediate_layers(x, n=[0, 3])
    assert all(torch.equal(a, b) for a, b in zip(ev, ones, strict=True))  # factor 1 == eval mode
    assert torch.equal(last_two[0], ev[0]) and (last_two[1] - ev[1]).abs().max() > 1e-3  # per-block factors
    assert all((a - b).abs().max() > 1e-3 for a, b in zip(ev, twos, strict=True))
    # Random draws: one per block, log-uniform in [1/2, 2], reproducible with the global seed.
    assert len(f1) == 4 and all(0.5 <= f <= 2.0 for f in f1 + f3) and len(set(f1)) == 4
    assert all(torch.equal(a, b) for a, b in zip(r1, r2, strict=True)) and f1 != f3
    assert not torch.equal(r1[1], r3[1])
    assert all(torch.equal(a, b) for a, b in zip(ev, ev2, strict=True))


# --------------------------------------------------------------------------------------------- conv stack


def _hand_modulation_block(blk, x):
    """§D.3 with functional ops: channels-first LN (eps 1e-6, ÷sqrt), ConvMod, MLP with the inner residual."""

    def ln(t, norm):
        u = t.mean(1, keepdim=True)
        var = ((t - u) ** 2).mean(1, keepdim=True)
        return norm.weight[:, None, None] * ((t - u) / torch.sqrt(var + 1e-6)) + norm.bias[:, None, None]

    a0, a2 = blk.attn.a[0], blk.attn.a[2]
    n = ln(x, blk.attn.norm)
    a = F.conv2d(F.gelu(F.conv2d(n, a0.weight, a0.bias)), a2.weight, a2.bias, padding=5, groups=x.shape[1])
    y = x + blk.layer_scale_1[:, None, None] * F.conv2d(a * F.conv2d(n, blk.attn.v.weight, blk.attn.v.bias),
                                                        blk.attn.proj.weight, blk.attn.proj.bias)
    m = blk.mlp
    h = F.gelu(F.conv2d(ln(y, m.norm), m.fc1.weight, m.fc1.bias))
    h = h + F.gelu(F.conv2d(h, m.pos.weight, m.pos.bias, padding=1, groups=h.shape[1]))
    return y + blk.layer_scale_2[:, None, None] * F.conv2d(h, m.fc2.weight, m.fc2.bias)


def test_conv_stack_block_semantics_and_sizes():
    stack = randomize_(ReferenceModulationStack(16, depth=2), 7)
    sd = stack.state_dict()
    assert sd["blocks.0.attn.a.2.weight"].shape == (16, 1, 11, 11) and sd["blocks.1.mlp.pos.weight"].shape == (
        64, 1, 3, 3)
    ls = sd["blocks.0.layer_scale_1"]
    assert ls.min() >= 0.2 and ls.max() <= 1.2
    assert ReferenceModulationStack(16, 1).blocks[0].layer_scale_2.eq(1e-6).all()
    gen = torch.Generator().manual_seed(4)
    for gh, gw in ((5, 7), (12, 3)):  # depthwise convs keep the spatial size ('SAME' padding)
        tokens = torch.randn(2, gh * gw, 16, generator=gen)
        with torch.no_grad():
            x = tokens.transpose(1, 2).reshape(2, 16, gh, gw)
            blk = stack.blocks[0]
            assert blk.attn.a(blk.attn.norm(x)).shape == x.shape
            assert blk.mlp.pos(blk.mlp.fc1(x)).shape == (2, 64, gh, gw)
            want = _hand_modulation_block(stack.blocks[1], _hand_modulation_block(blk, x))
            got = stack(tokens, gh, gw)
        assert got.shape == tokens.shape
        torch.testing.assert_close(got, want.reshape(2, 16, gh * gw).transpose(1, 2), rtol=0, atol=1e-5)
        # channels-first LN == LayerNorm over C in NHWC (up to rounding)
        norm = blk.attn.norm
        torch.testing.assert_close(
            norm(x), F.layer_norm(x.permute(0, 2, 3, 1), (16,), norm.weight, norm.bias, 1e-6).permute(0, 3, 1, 2),
            rtol=0, atol=1e-5)
    with pytest.raises(ValueError):
        stack(torch.zeros(1, 10, 16), 3, 3)


# --------------------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("kind", ["dinov3", "convstack"])
def test_tiny_end_to_end_and_click_path(kind):
    model = tiny(kind, seed=1)
    x4, pts = tiny_inputs()
    g = 7 if kind == "dinov3" else 8
    with torch.no_grad():
        out = model.intermediates(x4, pts)
        model.set_image(x4[:, :3])
        fast = model.apply_click(x4[:, 3:], pts)
    c = 64 if kind == "dinov3" else 48
    assert [tuple(t.shape) for t in out["taps"]] == [(2, g * g, c)] * 4
    assert out["encoder_stack"].shape == (2, g * g, c)
    assert [tuple(f.shape[-2:]) for f in out["fpn"]] == [(4 * g, 4 * g), (2 * g, 2 * g), (g, g), (g // 2, g // 2)]
    assert out["head_logits"].shape == (2, 1, 4 * g, 4 * g) and out["logits"].shape == (2, 1, 112, 112)
    assert torch.isfinite(out["logits"]).all() and 0.3 < out["logits"].std() < 50
    torch.testing.assert_close(fast, out["logits"], rtol=0, atol=1e-6)
    if kind == "dinov3":
        assert model.state_dict()["patch_embed_coords.proj.weight"].shape == (64, 3, 16, 16)
        assert model.state_dict()["backbone_mix.pos_embed"].shape == (1, 49, 64)
        taps = model.feature_extractor.dinov3.get_intermediate_layers(model.normalize(x4[:, :3]), n=[0, 1, 2, 3])
        assert all(torch.equal(a, b) for a, b in zip(taps, out["taps"], strict=True))  # normed taps are the skips
    else:
        assert not any("pos_embed" in k for k in model.state_dict() if k.startswith("backbone_mix."))


@pytest.mark.parametrize("kind", ["dinov3", "convstack"])
def test_other_resolution_without_table(kind):
    model = tiny(kind, seed=2)
    x4, pts = tiny_inputs(batch=1, size=224)
    with torch.no_grad():
        assert model(x4, pts).shape == (1, 1, 224, 224)  # conv stack: no table; DINOv3: RoPE + resized table


def test_dinov3_skipclick_train_mode_factors():
    model = tiny("dinov3", seed=3, dropout_ratio=0.0)
    x4, pts = tiny_inputs(batch=1)
    dino = model.feature_extractor.dinov3
    with torch.no_grad():
        ev = model(x4, pts)
        model.train()  # reaches the backbone, as the original trainer's net.train()
        assert dino.training
        dino.rope_rescale_factors = [1.0] * 4
        same = model(x4, pts)
        dino.rope_rescale_factors = [0.5, 2.0, 1.25, 0.8]
        other = model(x4, pts)
        assert dino.last_rope_rescale_factors == [0.5, 2.0, 1.25, 0.800000011920929]
    assert torch.equal(ev, same) and (ev - other).abs().max() > 1e-3


# --------------------------------------------------------------------------------------------- checkpoints


def test_dinov3_checkpoint_round_trip(tmp_path):
    model = tiny("dinov3", seed=4)
    path = tmp_path / "dinov3_skipclick.pth"
    save_original_checkpoint(model, path)
    ckpt = load_original_checkpoint(path)
    sd = ckpt["state_dict"]
    assert list(sd) == list(model.state_dict()) and all(v.dtype == torch.float32 for v in sd.values())
    assert torch.equal(sd["feature_extractor.dinov3.rope_embed.periods"], default_periods(16))
    assert "feature_extractor.dinov3.blocks.3.attn.qkv.bias_mask" in sd
    params = ckpt["config"]["params"]
    assert list(params)[:13] == [
        "use_disks", "norm_radius", "with_prev_mask", "extractor_type", "backbone_params", "backbone_repo_path",
        "backbone_weight_path", "neck_params", "head_params", "random_split", "trained_extractor",
        "use_intermediate", "skip_connections",
    ]
    assert params["extractor_type"] == {"type": "builtin", "value": "dinov3_vitb16", "specified": True}
    assert params["backbone_repo_path"]["value"] == DINOV3_REPO_PATH and params["backbone_repo_path"]["specified"]
    weight = params["backbone_weight_path"]
    assert weight["specified"] and weight["value"].endswith("/dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth")
    assert weight["value"].startswith("/")
    bp = params["backbone_params"]["value"]
    assert bp == dict(img_size=(112, 112), patch_size=(16, 16), embed_dim=64, depth=2, num_heads=4, mlp_ratio=4,
                      qkv_bias=True, primitive_stack=True)
    assert params["use_conv_stack"] == {"type": "builtin", "value": False, "specified": False}
    assert params["norm_mean_std"]["specified"] is False
    # overrides (e.g. another machine's paths) keep the specified flag
    other = save_original_checkpoint(model, tmp_path / "b.pth", backbone_repo_path="/x/dinov3")
    assert other["config"]["params"]["backbone_repo_path"] == {"type": "builtin", "value": "/x/dinov3",
                                                               "specified": True}

    restored = ReferenceSkipClick(**TINY_V3)
    restored.load_state_dict(sd, strict=True)
    x4, pts = tiny_inputs(batch=1)
    with torch.no_grad():
        assert torch.equal(restored(x4, pts), model(x4, pts))


def test_convstack_checkpoint_round_trip(tmp_path):
    model = tiny("convstack", seed=5)
    path = tmp_path / "convstack_skipclick.pth"
    save_original_checkpoint(model, path)
    ckpt = load_original_checkpoint(path)
    params = ckpt["config"]["params"]
    assert list(params)[10:13] == ["skip_connections", "use_conv_stack", "backbone_weight_path"]
    assert params["use_conv_stack"] == {"type": "builtin", "value": True, "specified": True}
    assert params["backbone_params"]["value"] == dict(img_size=(112, 112), patch_size=(14, 14), embed_dim=48,
                                                      depth=2)
    assert params["extractor_type"]["value"] == "dinov2_vitb14_reg"
    assert params["backbone_repo_path"] == {"type": "builtin", "value": None, "specified": False}
    assert params["backbone_weight_path"] == {"type": "builtin", "value": None, "specified": False}
    restored = ReferenceSkipClick(**TINY_CONV)
    restored.load_state_dict(ckpt["state_dict"], strict=True)
    x4, pts = tiny_inputs(batch=1)
    with torch.no_grad():
        assert torch.equal(restored(x4, pts), model(x4, pts))


def test_dinov3_hub_checkpoint(tmp_path):
    dino = tiny_dino3(seed=8)
    path = tmp_path / "dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth"
    save_dinov3_hub_checkpoint(dino, path)
    sd = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors, like the hub files
    assert list(sd)[:7] == ["cls_token", "storage_tokens", "mask_token", "patch_embed.proj.weight",
                            "patch_embed.proj.bias", "rope_embed.periods", "blocks.0.norm1.weight"]
    assert list(sd)[-2:] == ["norm.weight", "norm.bias"]
    assert all(torch.equal(v, dino.state_dict()[k]) and v.dtype == torch.float32 for k, v in sd.items())
    fresh = ReferenceDinoV3(**TINY_DINO3)
    fresh.load_state_dict(sd, strict=True)
