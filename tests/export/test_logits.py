"""The PyTorch reference, loaded strictly from an exported `.pth`, gives the Flax model's logits."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skipclick_jax import SkipClick  # noqa: E402
from skipclick_jax.weights import save_original_pth  # noqa: E402
from tests.parity import (  # noqa: E402
    assert_matches_reference,
    make_reference,
    random_inputs,
    reference_outputs,
    taps_and_logits,
)
from tests.torch_reference import load_original_checkpoint  # noqa: E402

from .helpers import variant_checkpoint  # noqa: E402


def test_exported_weights_give_the_same_logits(tmp_path):
    variant = "skipclick"  # fused taps + skip connections: every path of the model (one compile is enough)
    _, _, config, params = variant_checkpoint(variant, tmp_path)
    # Weights that exist only on the Flax side (as after fine-tuning): scale every tensor by 1 + 5 % noise.
    rng = np.random.default_rng(3)  # numpy: one jax.random call per shape would compile ~200 kernels
    tuned = jax.tree.map(lambda x: (np.asarray(x) * (1 + 0.05 * rng.standard_normal(x.shape))).astype(np.float32),
                         params)
    save_original_pth(tmp_path / "tuned.pth", config, tuned)

    ref = make_reference(variant, seed=999)  # different weights until the export is loaded
    ref.load_state_dict(load_original_checkpoint(tmp_path / "tuned.pth")["state_dict"], strict=True)
    image, prev, points = random_inputs(2, 112, seed=5)
    want = reference_outputs(ref, image, prev, points)
    taps, logits = taps_and_logits(SkipClick(config))(tuned, image, prev, points)
    assert_matches_reference(taps, logits, want)  # measured: logits 5.2e-6
