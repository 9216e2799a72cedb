"""Presets: the original config record describes every real preset exactly; `tiny` (taps 0–3, a 48-wide
encoder the original cannot build) exports exact tensors with a warning, and exactly via safetensors."""

import warnings

import pytest

pytest.importorskip("torch")

from skipclick_jax import load_checkpoint, preset  # noqa: E402
from skipclick_jax.model import init_params  # noqa: E402
from skipclick_jax.weights import (  # noqa: E402
    SafetensorsFile,
    extractor_type,
    save_original_pth,
    save_skipclick_safetensors,
    unrecorded_fields,
)

from .helpers import assert_same_params, assert_same_state, original_state  # noqa: E402


# The ViT-B/14 main preset is covered by test_full_size and the others by their small test variants.
@pytest.mark.parametrize("name", ["intermediate_vitg14_448", "baseline_vitb14_448", "skipclick_depth6_vitb14_448"])
def test_original_record_is_lossless_for_real_presets(name):
    config = preset(name)
    assert unrecorded_fields(config) == []
    assert extractor_type(config) == config.encoder_name


def test_tiny_preset(tmp_path):
    config = preset("tiny")
    params = init_params(config, seed=0)
    lost = unrecorded_fields(config)
    assert any(item.startswith("taps") or item.startswith("encoder") for item in lost)
    with pytest.warns(UserWarning, match="cannot express this configuration exactly"):
        save_original_pth(tmp_path / "tiny.pth", config, params)
    save_skipclick_safetensors(tmp_path / "tiny.safetensors", config, params)

    model, back = load_checkpoint(tmp_path / "tiny.safetensors")  # exact config from the metadata
    assert model.config == config
    assert_same_params(back, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, back = load_checkpoint(tmp_path / "tiny.pth", config=config)  # tensors exact; config passed in
    assert_same_params(back, params)
    # both formats hold the same tensors under the same keys
    assert_same_state(SafetensorsFile(tmp_path / "tiny.safetensors").read_all(), original_state(tmp_path / "tiny.pth"))
