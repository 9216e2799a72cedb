"""`skipclick_jax.pytorch`: the package's own PyTorch SkipClick against the independent test reference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skipclick_jax import SkipClickConfig, load_checkpoint  # noqa: E402
from skipclick_jax.pytorch import TorchSkipClick, torch_model  # noqa: E402
from tests.parity import LOGITS_ATOL, make_reference, random_inputs, reference_outputs, write_checkpoint  # noqa: E402
from tests.released_keys import released_keys  # noqa: E402


@pytest.mark.parametrize("preset, keys", [("skipclick_vitb14_448", "dinov2"), ("skipclick_dinov3_vitb16_448", "dinov3"),
                                          ("convstack_vitb14_448", "convstack")])
def test_released_configurations_have_the_released_keys(preset, keys):
    with torch.device("meta"):  # shapes only
        model = TorchSkipClick(getattr(SkipClickConfig, preset)())
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == [(key, shape) for key, shape, _, _ in released_keys(keys)]


@pytest.mark.parametrize("variant", ["skipclick", "frozen", "upsample_x4", "dinov3", "convstack"])
def test_same_outputs_as_the_reference(variant, tmp_path):
    """Loaded from Flax parameters (an original .pth read by load_checkpoint): the original's fast path
    (`set_image` / `apply_click`, full FPN first layers per click) is bit-identical to the reference, DINOv3 and
    conv stack included; the split path (image halves of the FPN first layers cached) differs only by float
    rounding (measured ≤ 8.1e-6)."""
    ref = make_reference(variant, seed=3)
    write_checkpoint(ref, tmp_path / "c.pth", variant)
    jax_model, params = load_checkpoint(tmp_path / "c.pth")
    model = torch_model(jax_model.config, params)
    base = jax_model.config.image_size
    for size in (base, 2 * base):
        image, prev, points = random_inputs(2, size, seed=size)
        want = reference_outputs(ref, image, prev, points)
        x, pm = (torch.from_numpy(a.transpose(0, 3, 1, 2).copy()) for a in (image, prev))
        with torch.no_grad():
            model.set_image(x)
            fast = model.apply_click(pm, torch.from_numpy(points)).numpy().transpose(0, 2, 3, 1)
            split = model(x, pm, torch.from_numpy(points)).numpy().transpose(0, 2, 3, 1)
            taps = model.taps(x)
        np.testing.assert_array_equal(fast, want["logits"])
        np.testing.assert_allclose(split, want["logits"], atol=LOGITS_ATOL, rtol=0)
        for got, exp in zip(taps, want["taps"], strict=False):
            np.testing.assert_array_equal(got.numpy().reshape(exp.shape), exp)
