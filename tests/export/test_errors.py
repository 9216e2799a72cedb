"""Bad input gives clear errors; outputs appear atomically (nothing partial is ever left behind)."""

import json
import struct
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:.*is not a DINOv2 hub model:UserWarning")

from skipclick_jax import CheckpointError, load_checkpoint  # noqa: E402
from skipclick_jax import cli as cli_module  # noqa: E402
from skipclick_jax.weights import (  # noqa: E402
    SafetensorsFile,
    export_checkpoint,
    load_weights,
    output_format,
    save_original_pth,
    save_skipclick_safetensors,
)
from skipclick_jax.weights import safetensors as safetensors_io  # noqa: E402
from skipclick_jax.weights.mapping import TensorSource  # noqa: E402

from .helpers import assert_same_params, original_state, variant_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    _, src, config, params = variant_checkpoint("skipclick", d)
    save_skipclick_safetensors(d / "model.safetensors", config, params)
    return src, config, params, d


@pytest.fixture
def cli(monkeypatch):
    """`skipclick …` with the export command registered (as skipclick_jax.cli will list it)."""
    name = "skipclick_jax.weights.export"
    if name not in cli_module.COMMAND_MODULES:
        monkeypatch.setattr(cli_module, "COMMAND_MODULES", [*cli_module.COMMAND_MODULES, name])
    return cli_module.main


def _leftovers(directory, name):
    return [p.name for p in directory.iterdir() if p.name.startswith(f".{name}.")]


def test_cli_exports_and_refuses_to_overwrite(small, tmp_path, cli, capsys):
    src, config, params, d = small
    out = tmp_path / "exported.pth"
    assert cli(["export", str(d / "model.safetensors"), str(out)]) == 0
    assert "exported a skipclick model" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = load_checkpoint(out)  # the project's own .pth loader reads it back
    assert model.config == config
    before = out.read_bytes()
    assert cli(["export", str(src), str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert cli(["export", str(src), str(out), "--overwrite"]) == 0
    assert original_state(out).keys() == original_state(src).keys()
    assert cli(["export", str(src), str(tmp_path / "enc"), "--dinov2-only", "--hf-names"]) == 0  # HF directory
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["config.json", "model.safetensors"]
    assert cli(["export", str(d / "model.safetensors"), str(tmp_path / "orbax")]) == 0  # → Orbax directory
    model, back = load_checkpoint(tmp_path / "orbax")
    assert model.config == config
    assert_same_params(back, params)


def test_safetensors_from_other_tools(small, tmp_path):
    """An original state dict saved with safetensors elsewhere (no metadata): configuration read off the shapes."""
    import safetensors.numpy

    src, config, params, d = small
    safetensors.numpy.save_file({k: v.numpy() for k, v in original_state(src).items()}, tmp_path / "plain.safetensors")
    with pytest.warns(UserWarning, match="no stored configuration"):
        model, back = load_checkpoint(tmp_path / "plain.safetensors")
    assert model.config.encoder == config.encoder and model.config.taps == config.taps
    assert_same_params(back, params)


@pytest.mark.parametrize("args, message", [
    (["OUT.bin"], "cannot tell the output format from the suffix '.bin'"),
    (["OUT.pth", "--hf-names", "--dinov2-only"], "--hf-names writes safetensors"),
    (["OUT.safetensors", "--hf-names"], "encoder only; add --dinov2-only"),
], ids=["unknown-suffix", "hf-names-pth", "hf-names-full-model"])
def test_cli_argument_errors(small, tmp_path, cli, capsys, args, message):
    src, *_ = small
    out, *flags = args
    assert cli(["export", str(src), str(tmp_path / out), *flags]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unknown_and_foreign_inputs(small, tmp_path):
    src, config, params, d = small
    (tmp_path / "weights.ckpt").write_bytes(b"\0" * 64)
    with pytest.raises(CheckpointError, match=r"unknown checkpoint format '\.ckpt'"):
        load_weights(tmp_path / "weights.ckpt")
    with pytest.raises(CheckpointError, match="no such file or directory"):
        load_weights(tmp_path / "absent.safetensors")
    (tmp_path / "notes.safetensors").write_text("hello, world")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(tmp_path / "notes.safetensors")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="unknown directory format 'something-else'"):
        load_weights(tmp_path / "dir")
    assert output_format(tmp_path / "x", None, False) == "orbax" and output_format("x.pt", None, False) == "pth"
    # an encoder-only file where a full model is expected, and vice versa
    export_checkpoint(src, tmp_path / "enc.safetensors", dinov2_only=True)
    with pytest.raises(CheckpointError, match="holds a DINOv2 encoder only"):
        load_checkpoint(tmp_path / "enc.safetensors")
    with pytest.raises(CheckpointError, match="pass --dinov2-only"):
        export_checkpoint(tmp_path / "enc.safetensors", tmp_path / "full.pth")


def test_truncated_safetensors(small, tmp_path):
    *_, d = small
    data = (d / "model.safetensors").read_bytes()
    for size, message in ((len(data) - 100, "truncated file: the header announces"),
                          (5, "too short for a header"),
                          (1000, "not a safetensors file or truncated")):
        (tmp_path / "cut.safetensors").write_bytes(data[:size])
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(tmp_path / "cut.safetensors")
        assert "cut.safetensors" in str(info.value)


def _with_metadata(src, dst, edit) -> None:
    """Copy a safetensors file with its metadata edited (tensor bytes unchanged)."""
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    edit(header["__metadata__"])
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    dst.write_bytes(struct.pack("<Q", len(blob)) + blob + data[8 + n:])


def test_metadata_preset_that_mismatches_the_tensors(small, tmp_path):
    src, config, params, d = small

    def other_preset(meta):
        stored = json.loads(meta["config"])
        meta["config"] = json.dumps({**stored, "fusion_depth": 5, "neck_dims": [16, 24, 32, 48]})

    _with_metadata(d / "model.safetensors", tmp_path / "bad.safetensors", other_preset)
    with pytest.raises(CheckpointError, match=r"(?s)missing keys \(12\).*backbone_mix\.blocks\.4\..*mis-shaped keys"
                                              r".*configuration stored in the metadata does not describe") as info:
        load_checkpoint(tmp_path / "bad.safetensors")
    assert "bad.safetensors" in str(info.value)
    _with_metadata(d / "model.safetensors", tmp_path / "junk.safetensors",
                   lambda meta: meta.update(config=json.dumps({"no_such_field": 1})))
    with pytest.raises(CheckpointError, match="invalid SkipClickConfig in the metadata"):
        load_checkpoint(tmp_path / "junk.safetensors")
    # exporting parameters under a configuration that does not describe them
    with pytest.raises(CheckpointError, match="do not match the configuration"):
        from skipclick_jax import SkipClickConfig

        save_original_pth(tmp_path / "wrong.pth", SkipClickConfig.tiny(), params)
    assert not (tmp_path / "wrong.pth").exists() and _leftovers(tmp_path, "wrong.pth") == []


def test_failure_mid_write_leaves_nothing(small, tmp_path, monkeypatch):
    src, config, params, d = small
    real_write = safetensors_io.write_safetensors

    def fail_after_first(path, sources, metadata=None, **kw):
        def boom():
            raise RuntimeError("device lost")
        broken = [sources[0], *(TensorSource(s.name, s.shape, boom) for s in sources[1:])]
        return real_write(path, broken, metadata, **kw)

    monkeypatch.setattr("skipclick_jax.weights.safetensors.write_safetensors", fail_after_first)
    out = tmp_path / "model.safetensors"
    with pytest.raises(RuntimeError, match="device lost"):
        save_skipclick_safetensors(out, config, params)
    assert not out.exists() and _leftovers(tmp_path, out.name) == []
    # overwriting: the previous file survives a failed export untouched
    out.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="device lost"):
        save_skipclick_safetensors(out, config, params, overwrite=True)
    assert out.read_bytes() == b"previous" and _leftovers(tmp_path, out.name) == []
    monkeypatch.undo()

    def torch_save_fails(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torch_save_fails)
    with pytest.raises(OSError, match="disk full"):
        save_original_pth(tmp_path / "model.pth", config, params)
    assert not (tmp_path / "model.pth").exists() and _leftovers(tmp_path, "model.pth") == []


def test_reader_validates_the_header(tmp_path):
    """Hand-made files: overlapping offsets, trailing bytes, unknown dtypes; F16/BF16 are read exactly."""
    def write(name, header, payload):
        blob = json.dumps(header).encode()
        (tmp_path / name).write_bytes(struct.pack("<Q", len(blob)) + blob + payload)
        return tmp_path / name

    bad = {"gap.safetensors": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8,
                               "not contiguous"),
           "tail.safetensors": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 9,
                                "5 unexpected bytes"),
           "dtype.safetensors": ({"a": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8,
                                 "unknown dtype 'C64'"),
           "size.safetensors": ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8,
                                "8 bytes for shape")}
    for name, (header, payload, message) in bad.items():
        with pytest.raises(CheckpointError, match=message):
            SafetensorsFile(write(name, header, payload))
    import ml_dtypes
    import safetensors.numpy

    values = np.array([1.5, -2.25, 3e-3], np.float32)
    safetensors.numpy.save_file({"h": values.astype(np.float16), "b": values.astype(ml_dtypes.bfloat16)},
                                tmp_path / "half.safetensors")
    f = SafetensorsFile(tmp_path / "half.safetensors")
    assert f.read("h").dtype == np.float32
    np.testing.assert_array_equal(f.read("h"), values.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(f.read("b"), values.astype(ml_dtypes.bfloat16).astype(np.float32))
