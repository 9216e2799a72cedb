"""Checkpoint conversion: strictness, clear errors, atomic output, DINOv2 hub files, the CLI."""

import pickle
import sys
import zipfile

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skipclick_jax import CheckpointError, load_checkpoint  # noqa: E402
from skipclick_jax.cli import main as cli  # noqa: E402
from skipclick_jax.model import DinoV2  # noqa: E402
from skipclick_jax.weights import load_encoder  # noqa: E402
from skipclick_jax.weights.mapping import flax_to_torch  # noqa: E402
from skipclick_jax.weights.pth import read_pth  # noqa: E402
from skipclick_jax.weights.tables.skipclick import skipclick_entries  # noqa: E402
from tests.parity import make_reference, max_relative, write_checkpoint  # noqa: E402
from tests.torch_reference import (  # noqa: E402
    ReferenceDinoV2,
    dinov2_kwargs,
    randomize_,
    save_dinov2_hub_checkpoint,
)


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    ref = make_reference("skipclick", seed=3)
    path = tmp_path_factory.mktemp("ckpt") / "skipclick.pth"
    write_checkpoint(ref, path)
    return ref, path


def _edited(src, dst, edit):
    """Copy an original checkpoint with its state dict edited."""
    ckpt = torch.load(src, weights_only=False, pickle_module=_StubPickle)
    ckpt["config"]["params"]["head_params"]["value"]["loss_decode"] = None  # the stub cannot be pickled
    edit(ckpt["state_dict"])
    torch.save(ckpt, dst)
    return dst


class _StubUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("isegm"):
            return type(name, (), {"__setstate__": lambda self, s: None})
        return super().find_class(module, name)


class _StubPickle:
    Unpickler = _StubUnpickler
    load = staticmethod(lambda f, **kw: _StubUnpickler(f, **kw).load())


def _assert_nothing_written(out):
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_loads_without_isegm_and_runs_no_code(small_ckpt):
    _, path = small_ckpt
    obj = read_pth(path)
    loss = obj["config"]["params"]["head_params"]["value"]["loss_decode"]
    assert "isegm" in repr(type(loss)) or "CrossEntropyLoss" in type(loss).__name__
    assert not any(m == "isegm" or m.startswith("isegm.") for m in sys.modules)


def test_convert_cli_round_trip_is_bit_exact(small_ckpt, tmp_path, capsys):
    _, path = small_ckpt
    out = tmp_path / "converted"
    assert cli(["convert", str(path), str(out)]) == 0
    assert "unused by the forward" in capsys.readouterr().out
    model_dir, params_dir = load_checkpoint(out)
    model_pth, params_pth = load_checkpoint(path)
    assert model_dir.config == model_pth.config
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), params_dir, params_pth)
    # and the table maps back to exactly the original state dict
    original = {k: v.numpy() for k, v in torch.load(path, weights_only=False, pickle_module=_StubPickle)[
        "state_dict"].items()}
    back = flax_to_torch(params_dir, skipclick_entries(model_dir.config))
    assert list(back) == list(original)
    for k in original:
        np.testing.assert_array_equal(back[k], original[k], err_msg=k)
    # converting again over an existing directory needs --overwrite
    assert cli(["convert", str(path), str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda sd: sd.pop("neck.down_8.2.weight"), r"missing keys \(1\):\n    neck.down_8.2.weight"),
        (lambda sd: sd.__setitem__("head.extra.weight", torch.zeros(3)),
         r"unexpected keys \(1\):\n    head.extra.weight"),
        (lambda sd: sd.__setitem__("fuse.bias", torch.zeros(7)),
         r"mis-shaped keys \(1\):\n    fuse.bias: \(7,\) in the file, \(128,\) expected"),
    ],
    ids=["missing", "unexpected", "misshaped"],
)
def test_layout_errors_name_the_keys_and_write_nothing(small_ckpt, tmp_path, edit, message, capsys):
    _, path = small_ckpt
    bad = _edited(path, tmp_path / "bad.pth", edit)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(bad)
    assert str(bad) in str(info.value)
    out = tmp_path / "out"
    assert cli(["convert", str(bad), str(out)]) == 2
    assert str(bad) in capsys.readouterr().err
    _assert_nothing_written(out)


def test_files_that_are_not_checkpoints(tmp_path, small_ckpt):
    _, good = small_ckpt
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign_zip = tmp_path / "foreign.pth"
    with zipfile.ZipFile(foreign_zip, "w") as z:
        z.writestr("hello.txt", "hi")
    for path in (text, truncated, foreign_zip, tmp_path / "absent.pth"):
        with pytest.raises(CheckpointError, match=str(path)):
            load_checkpoint(path)


def test_refuses_to_run_code_from_a_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "config": Evil()}, path)
    with pytest.raises(CheckpointError, match="refusing to load global builtins.print"):
        read_pth(path)


def test_foreign_state_dict_and_unsupported_variants(tmp_path, small_ckpt):
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3), "fc.bias": torch.zeros(2)}, foreign)
    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match="neither a SkipClick nor a DINOv2"):
        from skipclick_jax.weights import convert_file

        convert_file(foreign, out)
    _assert_nothing_written(out)
    ref, _ = small_ckpt
    v3 = tmp_path / "dinov3.pth"
    write_checkpoint(ref, v3, extractor_type="dinov3_vitb16")
    with pytest.raises(CheckpointError, match="DINOv3"):
        load_checkpoint(v3)


def _hub_taps_parity(file_name, size, tmp_path, kwargs):
    ref = randomize_(ReferenceDinoV2(**kwargs), seed=5).eval()
    path = tmp_path / file_name
    save_dinov2_hub_checkpoint(ref, path)
    out = tmp_path / "encoder"
    assert cli(["convert", str(path), str(out)]) == 0
    config, params = load_encoder(out)
    cfg_pth, params_pth = load_encoder(path)
    assert config == cfg_pth
    image = np.random.default_rng(0).normal(size=(1, size, size, 3)).astype(np.float32)
    taps = (2, 5, 8, 11)
    got = jax.jit(lambda p, x: DinoV2(config).apply({"params": p}, x, taps))(params, image)
    with torch.no_grad():
        want = ref.forward_taps(torch.from_numpy(image.transpose(0, 3, 1, 2).copy()), taps)
    for g, w in zip(got, want, strict=True):
        w = w.numpy()
        assert max_relative(np.asarray(g).reshape(w.shape), w) <= 1e-4
    return config


def test_dinov2_hub_small_with_registers(tmp_path):
    config = _hub_taps_parity("dinov2_vits14_reg4_pretrain.pth", 224, tmp_path, dinov2_kwargs("vits14_reg"))
    assert (config.embed_dim, config.num_heads, config.num_registers) == (384, 6, 4)
    assert config.interpolate_antialias and config.interpolate_offset == 0.0


def test_dinov2_hub_small_without_registers(tmp_path):
    """The register-less hub models resize the pos-embed with bicubic + scale factor (g + 0.1) / 37."""
    config = _hub_taps_parity("dinov2_vits14_pretrain.pth", 168, tmp_path, dinov2_kwargs("vits14"))
    assert config.num_registers == 0 and config.interpolate_offset == 0.1


def test_dinov2_swiglu_encoder_read_off_the_shapes(tmp_path):
    """ViT-g/14 uses a SwiGLU FFN; a narrow one exercises the same mapping and forward."""
    kwargs = dict(dinov2_kwargs("vitg14_reg"), embed_dim=128, depth=12, num_heads=2)
    config = _hub_taps_parity("custom_swiglu.pth", 112, tmp_path, kwargs)
    assert config.ffn == "swiglu" and config.hidden_dim == (int(128 * 4 * 2 / 3) + 7) // 8 * 8 == 344


def test_hub_weights_must_match_the_named_size(tmp_path):
    ref = randomize_(ReferenceDinoV2(**dinov2_kwargs("vits14")), seed=1)
    path = tmp_path / "dinov2_vitb14_pretrain.pth"  # misnamed: these are ViT-S weights
    save_dinov2_hub_checkpoint(ref, path)
    with pytest.raises(CheckpointError, match="do not match dinov2_vitb14"):
        load_encoder(path)


def test_key_table_is_the_released_layout():
    """The package's key table for the released configuration gives exactly the released checkpoint's keys,
    in its order, with its shapes (the list is recorded from the official file)."""
    from skipclick_jax import SkipClickConfig
    from skipclick_jax.weights.mapping import skipclick_shapes, torch_sources
    from tests.released_keys import released_keys

    config = SkipClickConfig.skipclick_vitb14_448()
    shapes = skipclick_shapes(config)
    got = [(s.name, list(s.shape)) for s in torch_sources(shapes, skipclick_entries(config), shapes)]
    assert got == [(key, shape) for key, shape, _, _ in released_keys("dinov2")]
