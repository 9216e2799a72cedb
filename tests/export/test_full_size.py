"""Full size, once: a ViT-B/14-reg SkipClick (153,164,417 parameters) exported to the original .pth and to
safetensors loads strictly into the PyTorch reference and reads back bit for bit; its encoder exports in hub
and Hugging Face names with the shapes of the published checkpoints."""


import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skipclick_jax import SkipClickConfig, load_checkpoint  # noqa: E402
from skipclick_jax.weights import save_original_pth, save_skipclick_safetensors  # noqa: E402
from skipclick_jax.weights.mapping import encoder_shapes as dinov2_shapes  # noqa: E402
from skipclick_jax.weights.mapping import skipclick_shapes, torch_sources  # noqa: E402
from skipclick_jax.weights.tables.dinov2 import dinov2_entries  # noqa: E402
from skipclick_jax.weights.tables.dinov2_hf import hf_config, hf_sources  # noqa: E402
from tests.torch_reference import ReferenceDinoV2, ReferenceSkipClick, dinov2_kwargs, load_original_checkpoint  # noqa: E402

from .helpers import assert_same_params  # noqa: E402


@pytest.mark.slow
def test_full_size_export(tmp_path):
    config = SkipClickConfig.skipclick_vitb14_448()
    rng = np.random.default_rng(0)  # random weights (init_params is covered at small size; this is faster)
    params = jax.tree.map(lambda s: rng.standard_normal(s.shape, dtype=np.float32), skipclick_shapes(config))
    assert sum(x.size for x in jax.tree.leaves(params)) == 153_164_417
    save_original_pth(tmp_path / "skipclick.pth", config, params)
    save_skipclick_safetensors(tmp_path / "skipclick.safetensors", config, params)

    ckpt = load_original_checkpoint(tmp_path / "skipclick.pth")
    with torch.device("meta"):  # no 153M-parameter init; strict=True still checks every key and shape
        ref = ReferenceSkipClick(dinov2=ReferenceDinoV2(**dinov2_kwargs("dinov2_vitb14_reg")))
    ref.load_state_dict(ckpt["state_dict"], strict=True, assign=True)
    assert all(torch.equal(v, ckpt["state_dict"][k]) for k, v in ref.state_dict().items())
    assert ckpt["config"]["params"]["extractor_type"]["value"] == "dinov2_vitb14_reg"
    del ref, ckpt

    model, back = load_checkpoint(tmp_path / "skipclick.safetensors")
    assert model.config == config
    assert_same_params(back, params)

    # the encoder in Hugging Face names: shapes and config.json of facebook/dinov2-with-registers-base
    shapes = {s.name: s.shape for s in hf_sources(torch_sources(params["encoder"], dinov2_entries(config.encoder),
                                                                dinov2_shapes(config.encoder)), config.encoder)}
    assert len(shapes) == 6 + 12 * 18 + 2
    assert shapes["embeddings.position_embeddings"] == (1, 1370, 768)
    assert shapes["embeddings.register_tokens"] == (1, 4, 768)
    assert shapes["encoder.layer.11.attention.attention.value.weight"] == (768, 768)
    assert shapes["encoder.layer.11.mlp.fc1.weight"] == (3072, 768)
    record = hf_config(config.encoder)
    assert {k: record[k] for k in ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "image_size", "patch_size", "num_register_tokens", "mlp_ratio")} == dict(
        model_type="dinov2_with_registers", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        image_size=518, patch_size=14, num_register_tokens=4, mlp_ratio=4)
