"""Bit-exact round trips for every variant of tests.parity: PyTorch → Flax → PyTorch and Flax → PyTorch → Flax,
through the original `.pth` format and through safetensors; the exported config record equals the original's."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from skipclick_jax import load_checkpoint  # noqa: E402
from skipclick_jax.model import init_params  # noqa: E402
from skipclick_jax.weights import (  # noqa: E402
    SafetensorsFile,
    save_original_pth,
    save_skipclick_safetensors,
    unrecorded_fields,
)
from skipclick_jax.weights.records import infer_config  # noqa: E402
from tests.parity import NEW_VARIANTS, VARIANTS  # noqa: E402
from tests.torch_reference import load_original_checkpoint  # noqa: E402

from .helpers import (  # noqa: E402
    assert_same_params,
    assert_same_state,
    bits,
    load_quietly,
    original_state,
    plain_record,
    variant_checkpoint,
)


@pytest.fixture(scope="module", params=[*VARIANTS, *NEW_VARIANTS])
def variant(request, tmp_path_factory):
    """An original checkpoint → Flax, exported back; and fresh `init_params` weights exported to both formats."""
    d = tmp_path_factory.mktemp(request.param)
    ref, src, config, params = variant_checkpoint(request.param, d)
    save_original_pth(d / "out.pth", config, params)
    save_skipclick_safetensors(d / "out.safetensors", config, params)
    start = init_params(config, seed=7)
    save_original_pth(d / "start.pth", config, start)
    save_skipclick_safetensors(d / "start.safetensors", config, start)
    return SimpleNamespace(name=request.param, ref=ref, src=src, config=config, params=params, start=start, dir=d)


def test_torch_flax_torch_is_bit_exact(variant):
    want = original_state(variant.src)
    assert_same_state(original_state(variant.dir / "out.pth"), want)

    f = SafetensorsFile(variant.dir / "out.safetensors")
    assert f.names == list(want)  # the original key order, in the header too
    assert_same_state(f.read_all(), want)
    loaded = safetensors_numpy.load_file(variant.dir / "out.safetensors")  # the reference reader agrees
    assert sorted(loaded) == sorted(want)
    assert all(bits(loaded[k]) == bits(want[k].numpy()) for k in want)


def test_flax_torch_flax_is_bit_exact(variant):
    from_pth = load_quietly(variant.dir / "start.pth")  # config from the original record + shapes
    model, from_st = load_checkpoint(variant.dir / "start.safetensors")  # config from the metadata
    assert from_pth.config == variant.config and model.config == variant.config
    assert_same_params(from_pth.params, variant.start)
    assert_same_params(from_st, variant.start)


def test_config_record_is_the_originals(variant):
    assert unrecorded_fields(variant.config) == []
    exported = load_original_checkpoint(variant.dir / "out.pth")
    assert set(exported) == {"state_dict", "config"}
    got, want = plain_record(exported["config"]), plain_record(load_original_checkpoint(variant.src)["config"])
    assert got["class"] == want["class"]
    # DINOv3 records carry where the original finds the DINOv3 code and weights on the author's machine; an
    # export names them relative to the working directory instead (the state dict itself is complete).
    machine = ("backbone_repo_path", "backbone_weight_path") if variant.name == "dinov3" else ()
    values = lambda record: {k: v["value"] for k, v in record["params"].items() if k not in machine}  # noqa: E731
    assert values(got) == values(want)
    for key in machine:
        assert isinstance(got["params"][key]["value"], str) and got["params"][key]["specified"]
    # The test reference always passes skip_connections; the repository's non-skip configs leave it at its
    # default (unspecified), as the export does. Flags may differ only where the value is the default, which
    # the original loader treats alike.
    flags = [k for k in want["params"] if got["params"][k]["specified"] != want["params"][k]["specified"]]
    assert all(k == "skip_connections" and not got["params"][k]["value"] for k in flags), flags
    # and it reads back (record + shapes) as the same configuration
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = infer_config({k: v.numpy() for k, v in exported["state_dict"].items()}, exported["config"], "x")
    assert back == variant.config


def test_reference_loads_export_strictly(variant):
    """The PyTorch reference accepts the exported state dict with strict=True (logits: test_logits.py)."""
    state = load_original_checkpoint(variant.dir / "start.pth")["state_dict"]
    result = variant.ref.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert all(np.array_equal(v.numpy(), state[k].numpy()) for k, v in variant.ref.state_dict().items())
