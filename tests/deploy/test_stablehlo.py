"""The StableHLO export reloads with `jax.export.deserialize` in a process that never imports this package,
and gives the JAX model's logits for any batch and any number of click rows."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

from .conftest import SIZE, click_states

# Measured: max |Δlogits| 8.3e-7 here, 1.2e-6 over 15 states of 3 seeds (logits up to ~2): the exported
# functions are the same JAX computation, jitted as one program (the reference jits encode and decode apart),
# so XLA fuses a little differently.
LOGITS_ATOL = 5e-6

RELOAD = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    directory, inputs, out = sys.argv[1:]
    data = np.load(inputs)
    encode = jax.export.deserialize(open(f"{directory}/encode.jax_export", "rb").read())
    click = jax.export.deserialize(open(f"{directory}/click.jax_export", "rb").read())
    results = {}
    for batch in (1, 3):  # the batch is symbolic: one module serves both
        features = encode.call(data["images"][:batch])
        for k in range(int(data["states"])):
            with jax.enable_x64(True):
                result = click.call(features, data["prev"][:batch], data[f"points{k}"][:batch])
            results[f"logits{batch}_{k}"] = np.asarray(result["logits"])
            results[f"prob{batch}_{k}"] = np.asarray(result["probabilities"])
    assert not any(m.startswith("skipclick_jax") for m in sys.modules), "the package's code was imported"
    np.savez(out, **results)
""")


def test_reload_without_the_package(tiny_stablehlo, jax_logits, tmp_path):
    rng = np.random.default_rng(3)
    images = rng.random((3, SIZE, SIZE, 3), dtype=np.float32)
    prev = rng.random((3, SIZE, SIZE, 1), dtype=np.float32)
    states = click_states(SIZE, 3, seed=4)
    np.savez(tmp_path / "inputs.npz", images=images, prev=prev, states=len(states),
             **{f"points{k}": p for k, p in enumerate(states)})
    script = tmp_path / "reload.py"
    script.write_text(RELOAD)
    subprocess.run([sys.executable, str(script), str(tiny_stablehlo), str(tmp_path / "inputs.npz"),
                    str(tmp_path / "out.npz")], check=True, cwd=tmp_path)
    out = np.load(tmp_path / "out.npz")
    for k, points in enumerate(states):
        want = jax_logits(images, prev, points)
        for batch in (1, 3):
            got = out[f"logits{batch}_{k}"]
            assert got.shape == (batch, SIZE, SIZE, 1) and got.dtype == np.float32
            assert np.abs(got - want[:batch]).max() <= LOGITS_ATOL, (batch, k)
            np.testing.assert_allclose(out[f"prob{batch}_{k}"], 1 / (1 + np.exp(-got.astype(np.float64))), atol=1e-6)


def test_metadata(tiny_stablehlo):
    record = json.loads((tiny_stablehlo / "metadata.json").read_text())
    assert (record["format"], record["size"], record["layout"]) == ("stablehlo", SIZE, "NHWC")
    click = record["graphs"]["click"]
    assert [t["name"] for t in click["inputs"]] == ["tokens", "skip0", "skip1", "skip2", "skip3", "prev_mask", "points"]
    assert click["inputs"][-1]["dtype"] == "float64" and click["inputs"][-1]["shape"] == ["batch", "2*n", 3]
    assert sorted(p.name for p in tiny_stablehlo.iterdir()) == ["click.jax_export", "encode.jax_export",
                                                                 "metadata.json"]
