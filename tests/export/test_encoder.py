"""Encoder-only export and import: DINOv2 hub names (.pth / safetensors) and Hugging Face names
(`Dinov2WithRegistersModel` / `Dinov2Model`: a single file, or a directory with config.json)."""

import dataclasses
import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from skipclick_jax import CheckpointError  # noqa: E402
from skipclick_jax.weights import (  # noqa: E402
    SafetensorsFile,
    export_checkpoint,
    read_hf_dir,
    save_encoder_pth,
    save_encoder_safetensors,
    save_hf_dir,
)
from skipclick_jax.weights import load_encoder as load_dinov2_weights  # noqa: E402
from skipclick_jax.weights.tables.dinov2_hf import config_from_hf, hf_config  # noqa: E402
from tests.parity import SMALL_DINOV2  # noqa: E402
from tests.torch_reference import ReferenceDinoV2, randomize_, save_dinov2_hub_checkpoint  # noqa: E402

from .helpers import assert_same_params, assert_same_state, bits, load_quietly, variant_checkpoint  # noqa: E402

# transformers' names for block 0 of a ViT with registers (create_rename_keys + read_in_q_k_v of
# convert_dinov2_with_registers_to_hf.py; module tree of modeling_dinov2_with_registers.py).
HF_BLOCK0 = [
    "encoder.layer.0.norm1.weight", "encoder.layer.0.norm1.bias",
    "encoder.layer.0.attention.attention.query.weight", "encoder.layer.0.attention.attention.query.bias",
    "encoder.layer.0.attention.attention.key.weight", "encoder.layer.0.attention.attention.key.bias",
    "encoder.layer.0.attention.attention.value.weight", "encoder.layer.0.attention.attention.value.bias",
    "encoder.layer.0.attention.output.dense.weight", "encoder.layer.0.attention.output.dense.bias",
    "encoder.layer.0.layer_scale1.lambda1",
    "encoder.layer.0.norm2.weight", "encoder.layer.0.norm2.bias",
    "encoder.layer.0.mlp.fc1.weight", "encoder.layer.0.mlp.fc1.bias",
    "encoder.layer.0.mlp.fc2.weight", "encoder.layer.0.mlp.fc2.bias",
    "encoder.layer.0.layer_scale2.lambda1",
]
HF_EMBEDDINGS = ["embeddings.cls_token", "embeddings.mask_token", "embeddings.register_tokens",
                 "embeddings.position_embeddings", "embeddings.patch_embeddings.projection.weight",
                 "embeddings.patch_embeddings.projection.bias"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A small DINOv2 hub checkpoint (registers, 12 blocks) and its Flax import."""
    d = tmp_path_factory.mktemp("hub")
    ref = randomize_(ReferenceDinoV2(**SMALL_DINOV2), seed=4).eval()
    save_dinov2_hub_checkpoint(ref, d / "small_dinov2.pth")
    weights = load_quietly(d / "small_dinov2.pth")
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    return SimpleNamespace(ref=ref, state=state, config=weights.config, params=weights.params, dir=d)


def test_hub_names_round_trip_and_load_into_the_reference(hub, tmp_path):
    save_encoder_pth(tmp_path / "enc.pth", hub.config, hub.params)
    save_encoder_safetensors(tmp_path / "enc.safetensors", hub.config, hub.params, name="dinov2_custom")
    from_pth = torch.load(tmp_path / "enc.pth", weights_only=True)  # a plain state dict, no pickled classes
    assert_same_state(from_pth, hub.state)
    assert_same_state(SafetensorsFile(tmp_path / "enc.safetensors").read_all(), hub.state)
    fresh = ReferenceDinoV2(**SMALL_DINOV2)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in
                           safetensors_numpy.load_file(tmp_path / "enc.safetensors").items()}, strict=True)
    fresh.load_state_dict(from_pth, strict=True)
    for path in (tmp_path / "enc.pth", tmp_path / "enc.safetensors"):
        config, params = load_dinov2_weights(path) if path.suffix == ".safetensors" else (
            load_quietly(path).config, load_quietly(path).params)
        assert config == hub.config
        assert_same_params(params, hub.params)


def test_hf_names_are_transformers_names_and_round_trip(hub, tmp_path):
    out = tmp_path / "enc_hf.safetensors"
    save_encoder_safetensors(out, hub.config, hub.params, hf_names=True)
    f = SafetensorsFile(out)
    assert f.names[:6] == HF_EMBEDDINGS
    assert f.names[6:6 + len(HF_BLOCK0)] == HF_BLOCK0
    assert f.names[-2:] == ["layernorm.weight", "layernorm.bias"] and len(f.names) == 6 + 12 * 18 + 2
    assert f.metadata["format"] == "pt"  # transformers refuses safetensors without it
    # q, k, v are exact thirds of the fused qkv; LayerScale gammas are lambda1
    d = hub.config.embed_dim
    qkv = hub.state["blocks.3.attn.qkv.weight"]
    for part, name in enumerate(("query", "key", "value")):
        assert bits(f.read(f"encoder.layer.3.attention.attention.{name}.weight")) == bits(qkv[part * d:(part + 1) * d])
    assert bits(f.read("encoder.layer.3.layer_scale2.lambda1")) == bits(hub.state["blocks.3.ls2.gamma"])
    assert json.loads(f.metadata["hf_config"]) == hf_config(hub.config)

    config, params = load_dinov2_weights(out)
    assert config == hub.config
    assert_same_params(params, hub.params)


def _as_transformers_would_save(directory, state: dict, record: dict, prefix: str = "") -> None:
    """A download from the Hugging Face hub: keys sorted by the library, metadata {'format': 'pt'}, extra
    config fields."""
    directory.mkdir()
    safetensors_numpy.save_file({prefix + k: v for k, v in state.items()}, directory / "model.safetensors",
                                metadata={"format": "pt"})
    extra = {"transformers_version": "4.47.0", "out_features": ["stage12"], "out_indices": [12],
             "stage_names": ["stem"] + [f"stage{i}" for i in range(1, 13)], "apply_layernorm": True,
             "reshape_hidden_states": True}
    (directory / "config.json").write_text(json.dumps({**record, **extra}))


def test_hugging_face_directory_and_file_import(hub, tmp_path):
    out = tmp_path / "hf"
    save_hf_dir(out, hub.config, hub.params)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    record = json.loads((out / "config.json").read_text())
    assert record["model_type"] == "dinov2_with_registers" and record["num_register_tokens"] == 4
    assert (record["hidden_size"], record["image_size"], record["patch_size"]) == (128, 126, 14)
    config, params = read_hf_dir(out)
    assert config == hub.config
    assert_same_params(params, hub.params)

    hf_state = SafetensorsFile(out / "model.safetensors").read_all()
    for prefix in ("", "dinov2_with_registers."):  # the base model, and one wrapped by ...ForImageClassification
        download = tmp_path / f"download{prefix}"
        _as_transformers_would_save(download, hf_state, record, prefix)
        weights = load_quietly(download)  # the directory
        assert weights.kind == "dinov2" and weights.config == hub.config
        assert_same_params(weights.params, hub.params)
    # the file alone with its config passed in, and a full SkipClick export of its encoder (hub names)
    config, params = load_dinov2_weights(tmp_path / "download" / "model.safetensors",
                                         hf_config=tmp_path / "download" / "config.json")
    assert_same_params(params, hub.params)
    export_checkpoint(out, tmp_path / "back.pth", dinov2_only=True)
    assert_same_state(torch.load(tmp_path / "back.pth", weights_only=True), hub.state)


def test_hf_without_registers_keeps_hub_interpolation(tmp_path):
    """HF `Dinov2Model` checkpoints (no registers; possibly no mask token) import with hub semantics."""
    ref = randomize_(ReferenceDinoV2(**{**SMALL_DINOV2, "num_register_tokens": 0, "interpolate_antialias": False,
                                        "interpolate_offset": 0.1, "depth": 3}), seed=6).eval()
    save_dinov2_hub_checkpoint(ref, tmp_path / "noreg.pth")
    weights = load_quietly(tmp_path / "noreg.pth")
    assert (weights.config.interpolate_antialias, weights.config.interpolate_offset) == (False, 0.1)
    save_hf_dir(tmp_path / "hf", weights.config, weights.params)
    record = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert record["model_type"] == "dinov2" and "num_register_tokens" not in record
    assert config_from_hf(record) == weights.config

    # transformers with use_mask_token=False saves no mask token: it is unused, imported as zeros
    state = SafetensorsFile(tmp_path / "hf" / "model.safetensors").read_all()
    del state["embeddings.mask_token"]
    _as_transformers_would_save(tmp_path / "nomask", state, {**record, "use_mask_token": False})
    config, params = read_hf_dir(tmp_path / "nomask")
    assert config == weights.config
    assert not np.any(np.asarray(params["mask_token"]))
    np.testing.assert_array_equal(params["pos_embed"], weights.params["pos_embed"])


def test_swiglu_encoder_uses_weights_in_and_weights_out(tmp_path):
    """ViT-g style SwiGLU FFN: hub `mlp.w12` / `mlp.w3` are HF `mlp.weights_in` / `mlp.weights_out`."""
    ref = randomize_(ReferenceDinoV2(**{**SMALL_DINOV2, "ffn": "swiglu", "depth": 2}), seed=8).eval()
    save_dinov2_hub_checkpoint(ref, tmp_path / "swiglu.pth")
    weights = load_quietly(tmp_path / "swiglu.pth")
    assert weights.config.ffn == "swiglu"
    save_hf_dir(tmp_path / "hf", weights.config, weights.params)
    f = SafetensorsFile(tmp_path / "hf" / "model.safetensors")
    hidden = weights.config.hidden_dim
    assert f.shape("encoder.layer.1.mlp.weights_in.weight") == (2 * hidden, 128)
    assert f.shape("encoder.layer.1.mlp.weights_out.weight") == (128, hidden)
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["use_swiglu_ffn"] is True
    config, params = read_hf_dir(tmp_path / "hf")
    assert config == weights.config
    assert_same_params(params, weights.params)


def test_mismatching_hf_config_is_a_clear_error(hub, tmp_path):
    save_hf_dir(tmp_path / "hf", hub.config, hub.params)
    record = json.loads((tmp_path / "hf" / "config.json").read_text())
    for change, message in ((dict(hidden_size=256), r"config\.json does not match the weights(.|\n)*mis-shaped keys"),
                            (dict(num_hidden_layers=11), r"unexpected keys \(18\)(.|\n)*encoder\.layer\.11\."),
                            (dict(model_type="vit"), "is not a DINOv2 model"),
                            (dict(hidden_act="relu"), "unsupported DINOv2 settings")):
        (tmp_path / "hf" / "config.json").write_text(json.dumps({**record, **change}))
        with pytest.raises(CheckpointError, match=message):
            read_hf_dir(tmp_path / "hf")
    with pytest.raises(CheckpointError, match="hub-named DINOv2 weights"):
        save_encoder_safetensors(tmp_path / "hub.safetensors", hub.config, hub.params)
        load_dinov2_weights(tmp_path / "hub.safetensors", hf_config=record)


def test_dinov2_only_export_of_a_full_model(tmp_path):
    _, src, config, params = variant_checkpoint("intermediate", tmp_path)
    prefix = "feature_extractor.dinov2."
    want = {k.removeprefix(prefix): v for k, v in torch.load(src, weights_only=False, pickle_module=__import__(
        "tests.torch_reference.checkpoints", fromlist=["x"]).stub_pickle_module)["state_dict"].items()
        if k.startswith(prefix)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = export_checkpoint(src, tmp_path / "enc.pth", dinov2_only=True)
        export_checkpoint(src, tmp_path / "enc_hf.safetensors", dinov2_only=True, hf_names=True)
    assert report.kind == "dinov2" and report.config == config.encoder
    assert_same_state(torch.load(tmp_path / "enc.pth", weights_only=True), want)
    enc_config, enc_params = load_dinov2_weights(tmp_path / "enc_hf.safetensors")
    assert enc_config == dataclasses.replace(config.encoder)
    assert_same_params(enc_params, params["encoder"])


def test_load_encoder_reads_every_download_form(hub, tmp_path):
    """`skipclick_jax.weights.load_encoder` (what training starts from) takes each form of the weights."""
    from skipclick_jax.weights import load_encoder, save_encoder

    save_encoder_safetensors(tmp_path / "hub.safetensors", hub.config, hub.params)
    save_hf_dir(tmp_path / "hf", hub.config, hub.params)
    save_encoder(tmp_path / "converted", hub.config, hub.params)
    for path in (hub.dir / "small_dinov2.pth", tmp_path / "hub.safetensors", tmp_path / "hf", tmp_path / "converted"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the small encoder is not a hub size: its shape is inferred
            config, params = load_encoder(path)
        assert config.embed_dim == hub.config.embed_dim and config.depth == hub.config.depth
        assert_same_params(params, hub.params)
