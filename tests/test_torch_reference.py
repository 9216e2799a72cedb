"""Self-checks of the independent PyTorch reference in tests/torch_reference (no skipclick_jax involved)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from tests.released_keys import released_keys  # noqa: E402
from tests.torch_reference import (  # noqa: E402
    IsegmStub,
    ReferenceDinoV2,
    ReferenceSkipClick,
    click_disk_maps,
    dinov2_kwargs,
    load_original_checkpoint,
    randomize_,
    save_dinov2_hub_checkpoint,
    save_original_checkpoint,
)

pytestmark = pytest.mark.torch

TINY_DINO = dict(embed_dim=48, depth=4, num_heads=4, pos_grid=9)  # 4 registers, antialiased, offset 0
TINY = dict(
    dinov2=TINY_DINO,
    taps=(0, 1, 2, 3),
    use_intermediate=(0, 1, 2, 3),
    img_size=112,
    fusion_depth=2,
    fusion_heads=4,
    neck_out_dims=(8, 16, 24, 32),
    head_channels=16,
)


def tiny_model(seed=0, **overrides):
    return randomize_(ReferenceSkipClick(**{**TINY, **overrides}), seed)


def tiny_inputs(batch=2, size=112, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x4 = torch.rand(batch, 4, size, size, generator=g)
    pts = torch.full((batch, 4, 3), -1.0, dtype=torch.float64)
    pts[:, 0] = torch.tensor([30.25, 40.5, 0.0], dtype=torch.float64)
    pts[:, 2] = torch.tensor([size - 20.0, 17.75, 1.0], dtype=torch.float64)
    pts[-1, 1] = torch.tensor([5.0, size - 1.0, 2.0], dtype=torch.float64)
    return x4, pts.to(dtype)


# --------------------------------------------------------------------------------------------- keys/config


def test_full_config_state_dict_matches_original_key_list():
    expected = [(key, shape, dtype) for key, shape, dtype, _ in released_keys("dinov2")]
    with torch.device("meta"):  # shapes only; the 153M parameters are never allocated
        model = ReferenceSkipClick()
    got = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]
    assert len(got) == 289
    assert got == expected  # same keys, same order, same shapes, float32
    assert sum(math.prod(s) for _, s, _ in got) == 153_164_417


def test_dinov2_named_configs():
    assert dinov2_kwargs("dinov2_vitb14_reg") == ReferenceDinoV2().hparams
    vits = dinov2_kwargs("vits14")
    assert (vits["embed_dim"], vits["num_register_tokens"], vits["interpolate_antialias"]) == (384, 0, False)
    assert vits["interpolate_offset"] == 0.1
    with torch.device("meta"):
        g = ReferenceDinoV2(**dinov2_kwargs("vitg14_reg"))
        l14 = ReferenceDinoV2(**dinov2_kwargs("vitl14"))
    sd = g.state_dict()
    assert sd["blocks.39.mlp.w12.weight"].shape == (2 * 4096, 1536)  # SwiGLU hidden rounded as in dinov2
    assert sd["blocks.0.mlp.w3.weight"].shape == (1536, 4096)
    assert sd["register_tokens"].shape == (1, 4, 1536) and sd["pos_embed"].shape == (1, 1370, 1536)
    assert "register_tokens" not in l14.state_dict() and len(l14.blocks) == 24
    with pytest.raises(ValueError):
        dinov2_kwargs("vith14")


# --------------------------------------------------------------------------------------------- forward


def test_tiny_forward_stage_shapes_and_scale():
    model = tiny_model()
    x4, pts = tiny_inputs()
    with torch.no_grad():
        out = model.intermediates(x4, pts)
    assert [t.shape for t in out["taps"]] == [(2, 64, 48)] * 4
    assert out["fused"].shape == out["encoder_stack"].shape == (2, 64, 48)
    assert out["click_maps"].shape == (2, 3, 112, 112)
    assert [tuple(f.shape) for f in out["fpn"]] == [
        (2, 8, 32, 32),
        (2, 16, 16, 16),
        (2, 24, 8, 8),
        (2, 32, 4, 4),
    ]
    assert out["head_logits"].shape == (2, 1, 32, 32) and out["logits"].shape == (2, 1, 112, 112)
    # Random weights must give informative, non-exploding logits.
    assert torch.isfinite(out["logits"]).all()
    assert 0.3 < out["logits"].std() and out["logits"].abs().max() < 50
    assert torch.equal(model(x4, pts), out["logits"])


def test_set_image_apply_click_equals_forward():
    model = tiny_model(seed=1)
    x4, pts = tiny_inputs(batch=1, seed=3)
    with torch.no_grad():
        full = model(x4, pts)
        model.set_image(x4[:, :3])
        fast = model.apply_click(x4[:, 3:], pts)
        again = model.apply_click(x4[:, 3:], pts)  # the cache must survive a click
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-6)
    assert torch.equal(fast, again)


@pytest.mark.parametrize(("upsample", "factor"), [("x2", 2), ("x4", 4)])
def test_head_upsample_variants(upsample, factor):
    model = tiny_model(upsample=upsample, head_channels=8)
    sd = model.state_dict()
    assert sd["head.convs.0.conv.weight"].shape[0] == 8 * factor
    assert sd["head.conv_seg.weight"].shape == (1, 8, 1, 1)
    x4, pts = tiny_inputs()
    with torch.no_grad():
        out = model.intermediates(x4, pts)
    assert out["head_logits"].shape == (2, 1, 32 * factor, 32 * factor)
    assert out["logits"].shape == (2, 1, 112, 112)


def test_single_tap_and_no_skip_variants():
    fused_no_skip = tiny_model(skip_connections=False)
    assert fused_no_skip.state_dict()["neck.down_16.0.weight"].shape == (24, 48, 1, 1)
    single = tiny_model(use_intermediate=[3], skip_connections=False)
    assert "fuse.weight" not in single.state_dict()
    single_skip = tiny_model(use_intermediate=[3], skip_connections=True)
    assert single_skip.state_dict()["neck.down_16.0.weight"].shape == (24, 96, 1, 1)
    x4, pts = tiny_inputs()
    with torch.no_grad():
        out = single.intermediates(x4, pts)
        out_skip = single_skip.intermediates(x4, pts)
    # Original semantics: a one-entry use_intermediate takes the FIRST tap, whatever the entry says.
    assert torch.equal(out["fused"], out["taps"][0])
    assert torch.isfinite(out["logits"]).all() and torch.isfinite(out_skip["logits"]).all()
    with pytest.raises(ValueError):
        ReferenceSkipClick(**{**TINY, "use_intermediate": (0, 1)})


def test_dropout_only_in_train_mode():
    model = tiny_model(dropout_ratio=0.5)
    x4, pts = tiny_inputs()
    with torch.no_grad():
        assert torch.equal(model(x4, pts), model(x4, pts))
        model.train()
        torch.manual_seed(0)
        a = model(x4, pts)
        b = model(x4, pts)
    assert not torch.equal(a, b)


# --------------------------------------------------------------------------------------------- weights


def test_randomize_is_deterministic_and_nontrivial():
    a, b, c = tiny_model(seed=7), tiny_model(seed=7), tiny_model(seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    for key, t in sa.items():
        assert not (t == 0).any(), f"{key} has exact zeros"
        assert not (t == 1).any(), f"{key} has exact ones"
        assert torch.equal(t, sb[key]), f"{key} not deterministic"
        assert not torch.equal(t, sc[key]), f"{key} ignores the seed"
    # The known init ranges: LayerScale in [0.2, 1.2], norm weights around 1.
    gamma = sa["feature_extractor.dinov2.blocks.0.ls1.gamma"]
    assert gamma.min() >= 0.2 and gamma.max() <= 1.2
    assert abs(sa["neck.down_4.1.weight"].mean() - 1) < 0.1


# --------------------------------------------------------------------------------------------- checkpoints


def test_original_checkpoint_needs_isegm_stub(tmp_path):
    model = tiny_model(seed=2)
    path = tmp_path / "skipclick.pth"
    save_original_checkpoint(model, path, random_split=False)
    assert not any(name == "isegm" or name.startswith("isegm.") for name in sys.modules)

    with pytest.raises(ModuleNotFoundError, match="isegm"):
        torch.load(path, map_location="cpu", weights_only=False)

    ckpt = load_original_checkpoint(path)
    assert set(ckpt) == {"state_dict", "config"}
    sd = ckpt["state_dict"]
    assert list(sd) == list(model.state_dict())
    assert all(v.dtype == torch.float32 for v in sd.values())
    cfg = ckpt["config"]
    assert cfg["class"] == "isegm.model.is_featurevit_model.FeatureVitModel"
    params = cfg["params"]
    loss = params["head_params"]["value"]["loss_decode"]
    assert isinstance(loss, IsegmStub)
    assert loss.stub_of == "isegm.model.modeling.transformer_helper.cross_entropy_loss.CrossEntropyLoss"
    assert loss.cls_criterion.stub_of.endswith("cross_entropy_loss.cross_entropy")
    assert params["neck_params"]["value"] == {
        "in_dim": 48,
        "out_dims": [8, 16, 24, 32],
    }  # no skip_connections
    bp = params["backbone_params"]["value"]
    assert bp["img_size"] == (112, 112) and bp["patch_size"] == (14, 14) and bp["depth"] == 2
    assert params["use_intermediate"] == {"type": "builtin", "value": [0, 1, 2, 3], "specified": True}
    assert params["extractor_type"]["value"] == "dinov2_vitb14_reg"
    assert params["skip_connections"]["value"] is True
    assert params["with_aux_output"] == {"type": "builtin", "value": False, "specified": False}
    assert params["norm_mean_std"]["specified"] is False
    assert params["backbone_weight_path"]["value"] is None

    restored = ReferenceSkipClick(**TINY)
    restored.load_state_dict(sd, strict=True)
    x4, pts = tiny_inputs()
    with torch.no_grad():
        assert torch.equal(restored(x4, pts), model(x4, pts))


def test_dinov2_hub_checkpoint(tmp_path):
    dino = randomize_(ReferenceDinoV2(**TINY_DINO), 4)
    path = tmp_path / "dinov2_vitb14_reg4_pretrain.pth"
    save_dinov2_hub_checkpoint(dino, path)
    sd = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors, like the hub files
    assert list(sd) == list(dino.state_dict())
    assert list(sd)[:6] == [
        "cls_token",
        "pos_embed",
        "register_tokens",
        "mask_token",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
    ]
    assert all(torch.equal(v, dino.state_dict()[k]) for k, v in sd.items())


# --------------------------------------------------------------------------------------------- resampling
# Hand-written resampling matrices (float64) following SPEC 1.4/1.7, independent of F.interpolate.


def _keys_cubic(x, a):
    x = abs(x)
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _aa_bicubic_matrix(n_in, n_out):
    """PyTorch antialiased bicubic (PIL-style): Keys a=-0.5, support scaled when downsampling, renormed."""
    s = n_in / n_out
    support, inv = 2 * max(s, 1.0), 1 / max(s, 1.0)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        c = s * (i + 0.5)
        lo, hi = max(int(c - support + 0.5), 0), min(int(c + support + 0.5), n_in)
        w = np.array([_keys_cubic((j - c + 0.5) * inv, -0.5) for j in range(lo, hi)])
        m[i, lo:hi] = w / w.sum()
    return m


def _bicubic_matrix(n_in, n_out, scale_factor=None):
    """PyTorch bicubic without antialias, align_corners=False: Keys a=-0.75, border-clamped taps."""
    s = 1 / scale_factor if scale_factor else n_in / n_out
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        u = s * (i + 0.5) - 0.5
        i0 = math.floor(u)
        t = u - i0
        for k, d in zip(range(-1, 3), (1 + t, t, 1 - t, 2 - t), strict=True):
            m[i, min(max(i0 + k, 0), n_in - 1)] += _keys_cubic(d, -0.75)
    return m


def _resize_tokens(table, grid, ah, aw):
    g = table.detach().double().numpy().reshape(grid[0], grid[1], -1)
    return np.einsum("ir,rcd,jc->ijd", ah, g, aw).reshape(ah.shape[0] * aw.shape[0], -1)


@pytest.mark.parametrize(("height", "width"), [(112, 112), (140, 140), (112, 168)])
def test_dinov2_pos_embed_antialiased_resize(height, width):
    # pos_grid 9: 112 -> 8 (antialiased downsampling), 140 -> 10 (upsampling), 112x168 -> 8x12 (both).
    dino = randomize_(ReferenceDinoV2(**TINY_DINO), 5)
    table = dino.pos_embed[0]
    got = dino.interpolate_pos_encoding(height, width)[0].detach().double().numpy()
    gh, gw = height // 14, width // 14
    want = _resize_tokens(table[1:], (9, 9), _aa_bicubic_matrix(9, gh), _aa_bicubic_matrix(9, gw))
    np.testing.assert_allclose(got[1:], want, atol=2e-5, rtol=0)
    np.testing.assert_array_equal(got[0], table[0].detach().numpy())  # cls entry untouched
    # The antialiased kernel really differs from the plain one at these sizes.
    plain = _resize_tokens(table[1:], (9, 9), _bicubic_matrix(9, gh), _bicubic_matrix(9, gw))
    assert np.abs(plain - want).max() > 1e-3


def test_dinov2_pos_embed_offset_path_and_skip():
    # Non-register hub models: no antialias, sampling driven by scale_factor (g + 0.1) / M.
    dino = randomize_(
        ReferenceDinoV2(
            **{
                **TINY_DINO,
                **{"num_register_tokens": 0, "interpolate_antialias": False, "interpolate_offset": 0.1},
            }
        ),
        6,
    )
    got = dino.interpolate_pos_encoding(112, 140)[0, 1:].detach().double().numpy()
    ah, aw = _bicubic_matrix(9, 8, (8 + 0.1) / 9), _bicubic_matrix(9, 10, (10 + 0.1) / 9)
    np.testing.assert_allclose(got, _resize_tokens(dino.pos_embed[0, 1:], (9, 9), ah, aw), atol=2e-5, rtol=0)
    # Native square size: the stored table is used as is (no resampling round trip).
    assert dino.interpolate_pos_encoding(126, 126) is dino.pos_embed


def test_encoder_stack_pos_embed_plain_bicubic_resize():
    model = tiny_model(seed=9)
    stack = model.backbone_mix  # 8x8 grid at img_size 112
    assert stack.pos_embed_for(8, 8) is stack.pos_embed
    got = stack.pos_embed_for(12, 10)[0].detach().double().numpy()
    want = _resize_tokens(stack.pos_embed[0], (8, 8), _bicubic_matrix(8, 12), _bicubic_matrix(8, 10))
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)
    x4, pts = tiny_inputs(size=168)  # end to end at a non-training size (both pos-embed resizes active)
    with torch.no_grad():
        assert model(x4, pts).shape == (2, 1, 168, 168)


# --------------------------------------------------------------------------------------------- clicks


def test_click_disk_maps_semantics():
    pts = torch.tensor([[[10.0, 10.0, 0], [-1, -1, -1], [3.0, 20.0, 1], [-1, 4.0, 2]]])  # (y, x, order)
    maps = click_disk_maps(pts, 32, 32, radius=5)
    assert maps.shape == (1, 2, 32, 32) and maps.dtype == torch.float32
    pos, neg = maps[0]
    assert pos[10, 15] == 1 and pos[13, 14] == 1 and pos[10, 16] == 0  # inclusive at distance exactly 5
    assert pos.sum() == 81  # lattice points with dy² + dx² <= 25
    assert neg[0, 20] == 1 and neg[3, 1] == 1  # (-1, 4) is valid: only max(y, x) < 0 marks padding
    model = tiny_model()
    prev = torch.rand(1, 1, 32, 32)
    cm = model.click_maps(prev, pts)
    assert torch.equal(cm[:, 0], prev[:, 0]) and torch.equal(cm[:, 1:], maps)  # [prev_mask, pos, neg]


def test_click_disk_maps_float64_rounding():
    # A click for which float64 subtraction (then float32 squares) and pure float32 differ by one pixel.
    y, x = 207.00959676522336, 152.01275108932518
    pts = torch.tensor([[[y, x, 0.0], [-1.0, -1.0, -1.0]]], dtype=torch.float64)
    got = click_disk_maps(pts, 224, 224)[0, 0].numpy()
    r, q = np.arange(224)[:, None], np.arange(224)[None, :]
    dy, dx = (r - y).astype(np.float32), (q - x).astype(np.float32)
    want64 = dy * dy + dx * dx <= 25
    dy32, dx32 = r.astype(np.float32) - np.float32(y), q.astype(np.float32) - np.float32(x)
    want32 = dy32 * dy32 + dx32 * dx32 <= 25
    assert (want64 != want32).sum() == 1
    np.testing.assert_array_equal(got, want64)
    np.testing.assert_array_equal(click_disk_maps(pts.float(), 224, 224)[0, 0].numpy(), want32)
