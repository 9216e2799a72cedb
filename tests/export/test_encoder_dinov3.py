"""DINOv3 encoder weights in and out: hub `.pth` (buffers included), hub-named safetensors, Hugging Face
`DINOv3ViTModel` names (a file or a directory with config.json), and the clear errors around them."""

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from skipclick_jax import CheckpointError, DinoV3Config  # noqa: E402
from skipclick_jax.weights import (  # noqa: E402
    SafetensorsFile,
    load_encoder,
    read_hf_dir,
    save_encoder,
    save_encoder_pth,
    save_encoder_safetensors,
    save_hf_dir,
)
from skipclick_jax.weights.records import hub_name_from_filename  # noqa: E402
from tests.parity import SMALL_DINOV2, SMALL_DINOV3  # noqa: E402
from tests.torch_reference import (  # noqa: E402
    ReferenceDinoV2,
    ReferenceDinoV3,
    randomize_,
    save_dinov2_hub_checkpoint,
    save_dinov3_hub_checkpoint,
)

from .helpers import assert_same_params, assert_same_state  # noqa: E402

# transformers' DINOv3ViTModel names (convert_dinov3_vit_to_hf.py, modeling_dinov3_vit.py): embeddings, block 0.
HF_EMBEDDINGS = ["embeddings.cls_token", "embeddings.mask_token", "embeddings.register_tokens",
                 "embeddings.patch_embeddings.weight", "embeddings.patch_embeddings.bias"]
HF_BLOCK0 = ["layer.0.norm1.weight", "layer.0.norm1.bias",
             "layer.0.attention.q_proj.weight", "layer.0.attention.q_proj.bias", "layer.0.attention.k_proj.weight",
             "layer.0.attention.v_proj.weight", "layer.0.attention.v_proj.bias",
             "layer.0.attention.o_proj.weight", "layer.0.attention.o_proj.bias", "layer.0.layer_scale1.lambda1",
             "layer.0.norm2.weight", "layer.0.norm2.bias", "layer.0.mlp.up_proj.weight", "layer.0.mlp.up_proj.bias",
             "layer.0.mlp.down_proj.weight", "layer.0.mlp.down_proj.bias", "layer.0.layer_scale2.lambda1"]


def quiet_load(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small encoder is not a hub size: its size is read off the shapes
        return load_encoder(path, **kwargs)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A small DINOv3 hub checkpoint whose k biases are zero, as in the released weights."""
    d = tmp_path_factory.mktemp("hub3")
    ref = randomize_(ReferenceDinoV3(**SMALL_DINOV3), seed=4).eval()
    with torch.no_grad():
        for block in ref.blocks:
            c = block.attn.qkv.bias.shape[0] // 3
            block.attn.qkv.bias[c:2 * c] = 0
    save_dinov3_hub_checkpoint(ref, d / "small_dinov3.pth")
    config, params = quiet_load(d / "small_dinov3.pth")
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    return SimpleNamespace(ref=ref, state=state, config=config, params=params, dir=d)


def test_hub_pth_and_safetensors_round_trip_with_buffers(hub, tmp_path):
    assert isinstance(hub.config, DinoV3Config) and hub.config.num_registers == 4 and hub.config.depth == 12
    save_encoder_pth(tmp_path / "enc.pth", hub.config, hub.params)
    save_encoder_safetensors(tmp_path / "enc.safetensors", hub.config, hub.params)
    from_pth = torch.load(tmp_path / "enc.pth", weights_only=True)  # a plain state dict
    assert_same_state(from_pth, hub.state)  # periods and bias_mask included, in the hub key order
    assert_same_state(SafetensorsFile(tmp_path / "enc.safetensors").read_all(), hub.state)
    fresh = ReferenceDinoV3(**SMALL_DINOV3)
    assert not fresh.load_state_dict(from_pth, strict=True).missing_keys
    for path in (tmp_path / "enc.pth", tmp_path / "enc.safetensors"):
        config, params = quiet_load(path)
        assert config == hub.config
        assert_same_params(params, hub.params)


def test_hf_names_are_dinov3vit_names_and_round_trip(hub, tmp_path):
    out = tmp_path / "enc_hf.safetensors"
    save_encoder_safetensors(out, hub.config, hub.params, hf_names=True)
    f = SafetensorsFile(out)
    assert f.names[:5] == HF_EMBEDDINGS and f.names[5:5 + len(HF_BLOCK0)] == HF_BLOCK0
    assert f.names[-2:] == ["norm.weight", "norm.bias"] and not any("periods" in n or "bias_mask" in n for n in f.names)
    assert f.shape("embeddings.mask_token") == (1, 1, 128) and f.shape("layer.0.attention.k_proj.weight") == (128, 128)
    assert json.loads(f.metadata["hf_config"])["model_type"] == "dinov3_vit"
    config, params = quiet_load(out)
    assert config == hub.config
    assert_same_params(params, hub.params)  # bit for bit: the k bias was zero, buffers are the released ones

    save_hf_dir(tmp_path / "hf", hub.config, hub.params)
    record = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert record["architectures"] == ["DINOv3ViTModel"] and record["key_bias"] is False
    assert (record["hidden_size"], record["intermediate_size"], record["num_register_tokens"]) == (128, 512, 4)
    config, params = read_hf_dir(tmp_path / "hf")
    assert config == hub.config
    assert_same_params(params, hub.params)


def test_hf_export_refuses_what_hf_cannot_express(hub, tmp_path):
    """A k-bias mask other than the canonical one, or RoPE periods other than the released ones: HF's model
    cannot represent them, so the export says so and writes nothing."""
    for edit, words in ((("blocks_3", "attn", "qkv", "bias_mask"), "k-bias mask"), (("rope_periods",), "RoPE periods")):
        params = json.loads(json.dumps(hub.params, default=lambda a: np.asarray(a).tolist()))
        node = params
        for k in edit[:-1]:
            node = node[k]
        node[edit[-1]] = np.ones_like(np.asarray(node[edit[-1]])).tolist()
        params = _arrays(params)
        with pytest.raises(CheckpointError, match=words):
            save_encoder_safetensors(tmp_path / "x.safetensors", hub.config, params, hf_names=True)
        assert not (tmp_path / "x.safetensors").exists()


def _arrays(tree):
    return {k: _arrays(v) if isinstance(v, dict) else np.asarray(v, np.float32) for k, v in tree.items()}


def test_every_download_form_loads_as_the_encoder(hub, tmp_path):
    save_encoder_safetensors(tmp_path / "hub.safetensors", hub.config, hub.params)
    save_hf_dir(tmp_path / "hf", hub.config, hub.params)
    save_encoder(tmp_path / "converted", hub.config, hub.params)
    for path in (hub.dir / "small_dinov3.pth", tmp_path / "hub.safetensors", tmp_path / "hf", tmp_path / "converted"):
        config, params = quiet_load(path)
        assert config == hub.config
        assert_same_params(params, hub.params)


def test_wrong_family_and_unsupported_models_are_clear_errors(hub, tmp_path):
    v2 = randomize_(ReferenceDinoV2(**SMALL_DINOV2), seed=1).eval()
    save_dinov2_hub_checkpoint(v2, tmp_path / "v2.pth")
    with pytest.raises(CheckpointError, match="holds a DINOv2 encoder, but a DINOv3 one is expected"):
        load_encoder(tmp_path / "v2.pth", name="dinov3_vitb16")
    with pytest.raises(CheckpointError, match="holds a DINOv3 encoder, but a DINOv2 one is expected"):
        load_encoder(hub.dir / "small_dinov3.pth", name="dinov2_vitb14_reg")
    with pytest.raises(CheckpointError, match="weights do not match dinov3_vitb16"):
        load_encoder(hub.dir / "small_dinov3.pth", name="dinov3_vitb16")
    with pytest.raises(CheckpointError, match="vit7b16 is not supported"):
        load_encoder(hub.dir / "small_dinov3.pth", name="dinov3_vit7b16")
    with pytest.raises(ValueError, match="vit7b16 is not supported"):
        DinoV3Config.hub("dinov3_vit7b16")


def test_hub_file_names():
    assert hub_name_from_filename("dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth") == "dinov3_vitb16"
    assert hub_name_from_filename("dinov3_vith16plus_pretrain_lvd1689m-7c1da9a5.pth") == "dinov3_vith16plus"
    assert hub_name_from_filename("dinov3_vitl16_pretrain_sat493m-eadcf0ff.pth") == "dinov3_vitl16"
    assert hub_name_from_filename("dinov2_vitb14_reg4_pretrain.pth") == "dinov2_vitb14_reg"
    assert hub_name_from_filename("weights.pth") is None
    assert [DinoV3Config.hub(f"dinov3_vit{s}").hidden_dim for s in ("s16plus", "l16plus", "h16plus")] == [
        1536, 4096, 5120]
