"""Shared helpers of the export tests: bit-level comparisons and per-variant checkpoints."""

from __future__ import annotations

import warnings

import jax
import numpy as np

from skipclick_jax.weights import load_weights
from tests.parity import make_reference, write_checkpoint
from tests.torch_reference import load_original_checkpoint


def bits(a) -> bytes:
    """The exact bytes of a float32 array (NaN payloads and signed zeros included)."""
    a = np.asarray(a)
    assert a.dtype == np.float32, a.dtype
    return np.ascontiguousarray(a).tobytes()


def assert_same_state(got: dict, want: dict) -> None:
    """Same keys in the same order, same shapes, float32, same bytes (torch tensors or numpy arrays)."""
    assert list(got) == list(want)
    for k in want:
        g, w = (x.numpy() if hasattr(x, "numpy") else np.asarray(x) for x in (got[k], want[k]))
        assert g.dtype == np.float32 and w.dtype == np.float32, k
        assert g.shape == w.shape, k
        assert bits(g) == bits(w), k


def assert_same_params(got, want) -> None:
    """Identical Flax trees, leaf by leaf, bit for bit."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True):
        assert np.shape(g) == np.shape(w), path
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype == np.float32, path
        assert np.array_equal(g.view(np.uint32), w.view(np.uint32)), path  # bit for bit, no copies


def original_state(path) -> dict:
    """The state dict of an original-format `.pth`, read with the isegm stub unpickler."""
    return load_original_checkpoint(path)["state_dict"]


def load_quietly(path, **kwargs):
    """`load_weights` without the "dinov2_custom is not a hub model; sizes read off the shapes" warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_weights(path, **kwargs)


def variant_checkpoint(variant: str, directory):
    """(reference model, original .pth path, config, Flax params) of one `tests.parity.VARIANTS` entry."""
    ref = make_reference(variant, seed=sum(map(ord, variant)))
    path = directory / f"{variant}.pth"
    write_checkpoint(ref, path, variant)
    weights = load_quietly(path)
    return ref, path, weights.config, weights.params


def plain_record(config: dict) -> dict:
    """An isegm config record with the pickled loss instance replaced by (class name, public attributes)."""
    params = {k: dict(v) for k, v in config["params"].items()}
    head = dict(params["head_params"]["value"])
    loss = head["loss_decode"]
    state = {k: v for k, v in vars(loss).items() if not k.startswith("_") and k not in ("training", "cls_criterion")}
    criterion = vars(loss).get("cls_criterion")
    head["loss_decode"] = (getattr(type(loss), "stub_of", type(loss).__name__), state,
                           getattr(criterion, "stub_of", None))
    params["head_params"]["value"] = head
    return {"class": config["class"], "params": params}
