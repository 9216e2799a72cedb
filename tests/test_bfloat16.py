"""bfloat16 compute: bf16 operands with float32 accumulation, weights prepared once per engine.

The policy (model/layers.py): every matmul and convolution takes operands in the compute dtype and returns
float32; norms, softmax, GELU and the residual stream are float32. The engine applies the model with
`prepare_variables` (kernels already in the compute dtype, FPN first layers split into their click and
image halves), which must give exactly what the plain parameters give.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skipclick_jax.config import preset
from skipclick_jax.inference import ClickEngine, ClickSession
from skipclick_jax.model import SkipClick, init_params, prepare_variables
from tests.parity import random_inputs

TENSOR = r"tensor<[0-9x]*x?(\w+)>"
DOT = re.compile(rf"stablehlo\.dot_general (%\w+), (%\w+),.*: \({TENSOR}, {TENSOR}\) -> {TENSOR}")


def dot_types(hlo: str) -> list[tuple[str, str, str]]:
    """(lhs, rhs, result) element types of every dot in a lowered module, leaving out the resizes by a
    constant interpolation matrix (the DINOv2 pos-embed table's; resizes are kept float32 on purpose)."""
    found = (m.groups() for m in DOT.finditer(hlo))
    return [tuple(types) for lhs, rhs, *types in found if not (lhs.startswith("%cst") or rhs.startswith("%cst"))]


def small_model(name: str, dtype) -> tuple[SkipClick, dict, int]:
    config = preset(name)
    return SkipClick(config, dtype=dtype), init_params(config, seed=1), 8 * config.patch_size


@pytest.mark.parametrize(("name", "dtype"), [("tiny", jnp.float32), ("tiny", jnp.bfloat16),
                                             ("tiny_dinov3", jnp.bfloat16), ("tiny_convstack", jnp.bfloat16)])
def test_prepared_variables_give_the_plain_outputs(name, dtype):
    """Casting kernels once and storing the FPN halves in GEMM layout changes nothing, bit for bit (float32
    DINOv3 / conv-stack engines are also held to the reference by their session tests)."""
    model, params, size = small_model(name, dtype)
    image, prev, points = random_inputs(2, size, seed=3)
    plain = jax.jit(model.apply)({"params": params}, image, prev, points)
    variables = prepare_variables(model, params)
    features = jax.jit(lambda v, x: model.apply(v, x, method=SkipClick.encode))(variables, image)
    prepared = jax.jit(lambda v, f: model.apply(v, f, prev, points, method=SkipClick.decode))(variables, features)
    np.testing.assert_array_equal(np.asarray(prepared), np.asarray(plain))
    kernels = [x for p, x in jax.tree_util.tree_leaves_with_path(variables["params"]) if p[-1].key == "kernel"]
    assert {x.dtype for x in kernels} == {jnp.dtype(dtype)}
    assert {x.dtype for x in jax.tree.leaves(variables["prepared"])} == {jnp.dtype(dtype)}


@pytest.mark.parametrize("name", ["tiny", "tiny_dinov3", "tiny_convstack"])
def test_bfloat16_dots_take_bf16_operands_and_accumulate_in_float32(name):
    """Every matmul of the bf16 encode and click step is bf16 × bf16 → f32 (what bf16 units run fast and
    the accurate mode); in float32 every dot is f32 × f32 → f32. A bf16 mode that silently ran float32, or
    rounded its results to bf16, fails here."""
    for dtype, want in ((jnp.bfloat16, ("bf16", "bf16", "f32")), (jnp.float32, ("f32", "f32", "f32"))):
        model, params, size = small_model(name, dtype)
        engine = ClickEngine(model, params, size, flip=True)
        image, prev, _ = random_inputs(1, size, seed=4)
        features = engine.encode(image)
        offsets = engine.encode_clicks([[(4.0, 5.0, True)]])
        for hlo in (engine._encode.lower(engine.variables, engine.put(image)).as_text(),
                    engine._click.lower(engine.variables, features, engine.put(prev), offsets).as_text()):
            types = dot_types(hlo)
            assert len(types) >= 10, len(types)  # every block's projections, patch embeddings, FPN, head
            assert set(types) == {want}, set(types)


@pytest.fixture(scope="module")
def sessions():
    model, params, size = small_model("tiny", jnp.float32)
    return {dtype: ClickSession(SkipClick(model.config, dtype=dtype), params, size=size, flip=False)
            for dtype in (jnp.float32, jnp.bfloat16)}, size


def test_bfloat16_session_agrees_with_float32_and_never_recompiles(sessions, compile_counter):
    """bf16 vs f32 probabilities on this random-weight tiny model: measured max 5.4e-3, mask agreement
    ≥ 0.9986 (random weights put many pixels near 0.5; the trained-model figures are in the README);
    bounds 0.02 and 0.99. Not silently float32: the difference is far above float32 noise (~1e-6).
    Clicks after the first compile nothing."""
    by_dtype, size = sessions
    image, _, _ = random_inputs(1, size, seed=6)
    maps = {}
    for dtype, session in by_dtype.items():
        session.set_image(image[0])
        session.add_click(40, 50, True)
        before = compile_counter[0]
        maps[dtype] = [session.add_click(80, 20, False), session.add_click(10, 100, True)]
        assert compile_counter[0] == before, f"{dtype.__name__}: a click recompiled"
        assert all(m.dtype == np.float32 for m in maps[dtype])
    for f32, bf16 in zip(maps[jnp.float32], maps[jnp.bfloat16], strict=True):
        diff = np.abs(f32 - bf16)
        assert 1e-3 < diff.max() <= 0.02, diff.max()
        assert np.mean((f32 > 0.5) == (bf16 > 0.5)) >= 0.99
