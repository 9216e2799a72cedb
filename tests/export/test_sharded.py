"""Parameters sharded over a mesh of the 8 simulated CPU devices export exactly like host parameters,
gathered one tensor at a time."""

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

pytest.importorskip("torch")

from skipclick_jax import DinoV2Config, SkipClickConfig  # noqa: E402
from skipclick_jax.model import init_params  # noqa: E402
from skipclick_jax.weights import mapping as tensors_module  # noqa: E402
from skipclick_jax.weights import save_encoder_safetensors, save_original_pth, save_skipclick_safetensors  # noqa: E402

from .helpers import assert_same_state, original_state  # noqa: E402

# The small configuration of tests.parity ("skipclick" variant), written out.
CONFIG = SkipClickConfig(encoder=DinoV2Config(embed_dim=128, depth=12, num_heads=2, pos_grid=9),
                         encoder_name="dinov2_custom", image_size=112, fusion_heads=4,
                         neck_dims=(16, 24, 32, 40), head_width=16)


def _shard(params, mesh):
    """Shard each leaf on its first dimension divisible by 8 (last dims first: kernels' output axis), else
    replicate it."""
    def place(x):
        for axis in reversed(range(x.ndim)):
            if x.shape[axis] % 8 == 0:
                spec = [None] * x.ndim
                spec[axis] = "devices"
                return jax.device_put(x, NamedSharding(mesh, P(*spec)))
        return jax.device_put(x, NamedSharding(mesh, P()))
    return jax.tree.map(place, params)


def test_sharded_export_equals_host_export(tmp_path, monkeypatch):
    assert jax.device_count() == 8
    host = init_params(CONFIG, seed=3)
    mesh = Mesh(np.array(jax.devices()), ("devices",))
    sharded = _shard(host, mesh)
    kinds = [len(x.sharding.device_set) == 8 and not x.sharding.is_fully_replicated for x in jax.tree.leaves(sharded)]
    assert any(kinds) and not all(kinds)  # some leaves sharded, some replicated

    gathered = []
    real_get = jax.device_get

    def one_leaf_at_a_time(x):
        assert isinstance(x, jax.Array), type(x)  # a single array, never the tree
        gathered.append(x.shape)
        return real_get(x)

    monkeypatch.setattr(tensors_module.jax, "device_get", one_leaf_at_a_time)
    save_skipclick_safetensors(tmp_path / "sharded.safetensors", CONFIG, sharded)
    save_original_pth(tmp_path / "sharded.pth", CONFIG, sharded)
    save_encoder_safetensors(tmp_path / "enc_sharded.safetensors", CONFIG.encoder, sharded["encoder"], hf_names=True)
    assert len(gathered) == 2 * len(jax.tree.leaves(sharded)) + len(jax.tree.leaves(sharded["encoder"]))
    monkeypatch.undo()

    save_skipclick_safetensors(tmp_path / "host.safetensors", CONFIG, host)
    save_original_pth(tmp_path / "host.pth", CONFIG, host)
    save_encoder_safetensors(tmp_path / "enc_host.safetensors", CONFIG.encoder, host["encoder"], hf_names=True)
    for a, b in (("sharded.safetensors", "host.safetensors"), ("enc_sharded.safetensors", "enc_host.safetensors")):
        assert (tmp_path / a).read_bytes() == (tmp_path / b).read_bytes()
    assert_same_state(original_state(tmp_path / "sharded.pth"), original_state(tmp_path / "host.pth"))
