"""Full size: a ViT-B/14-reg SkipClick checkpoint (153,164,417 parameters) in the released layout,
converted with `skipclick convert`, against the PyTorch reference at 448 and 224."""

import jax
import pytest

torch = pytest.importorskip("torch")

from skipclick_jax import SkipClickConfig, load_checkpoint  # noqa: E402
from skipclick_jax.cli import main as cli  # noqa: E402
from tests.parity import assert_matches_reference, random_inputs, reference_outputs, taps_and_logits  # noqa: E402
from tests.torch_reference import (  # noqa: E402
    ReferenceDinoV2,
    ReferenceSkipClick,
    dinov2_kwargs,
    randomize_,
    save_original_checkpoint,
)


@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    torch.manual_seed(0)
    ref = randomize_(ReferenceSkipClick(dinov2=ReferenceDinoV2(**dinov2_kwargs("vitb14_reg"))), seed=11).eval()
    tmp = tmp_path_factory.mktemp("full")
    path = tmp / "cocolvis_skipclick.pth"
    save_original_checkpoint(ref, path)
    assert cli(["convert", str(path), str(tmp / "converted")]) == 0
    model, params = load_checkpoint(tmp / "converted")
    return ref, model, params


@pytest.mark.slow
def test_detects_the_released_configuration(full_size):
    _, model, params = full_size
    assert model.config == SkipClickConfig.skipclick_vitb14_448()
    assert sum(x.size for x in jax.tree.leaves(params)) == 153_164_417


@pytest.mark.slow
@pytest.mark.parametrize("size", [448, 224])
def test_full_size_parity(full_size, size):
    ref, model, params = full_size
    image, prev, points = random_inputs(1, size, seed=size, n_points=4)
    want = reference_outputs(ref, image, prev, points)
    taps, logits = taps_and_logits(model)(params, image, prev, points)
    # Measured: taps ≤ 9.3e-7 relative, logits 1.1e-5 (448) and 9.5e-6 (224). That is the float32 noise
    # floor: on the same inputs PyTorch's own float32 logits are 2.5e-5 from a float64 evaluation of the
    # reference (and so are ours), so no float32 port can be held much below 1e-5. A tanh GELU in the first
    # fusion block alone moves these logits by 2.5e-4.
    assert_matches_reference(taps, logits, want, logits_atol=2e-5)
