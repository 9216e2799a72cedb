"""`skipclick agreement`: bf16 vs float32 sessions driven by the same simulated clicks, on real images."""

import json

import cv2
import numpy as np
import pytest

from skipclick_jax.cli import main as cli
from skipclick_jax.eval.agreement import compare_sessions
from skipclick_jax.inference import ClickSession


def test_a_session_agrees_with_itself(eval_model, real_samples):
    """The comparison itself: two float32 sessions of the same weights agree everywhere."""
    sessions = [ClickSession(eval_model.model, eval_model.params, size=112, flip=False) for _ in range(2)]
    figures = compare_sessions(*sessions, [(s.image, s.gt) for s in real_samples[:2]], clicks=3).summary()
    assert figures["clicks"] == 6 and figures["mask_agreement_worst_click"] == 1.0
    assert figures["same_next_click"] == 1.0 and figures["logit_abs_diff"]["max"] == 0.0


def test_cli_compares_bfloat16_with_float32(eval_checkpoint, voc_arc, tmp_path, capsys):
    pytest.importorskip("torch")
    (rgb, masks), _ = voc_arc
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "data" / "images" / "voc.png"), rgb[..., ::-1])
    for k in (1, 6):
        cv2.imwrite(str(tmp_path / "data" / "masks" / f"voc_{k}.png"), masks[k].astype(np.uint8) * 255)
    out = tmp_path / "agreement.json"
    argv = ["agreement", "--checkpoint", str(eval_checkpoint), "--datasets", f"folder:{tmp_path / 'data'}",
            "--clicks", "3", "--json", str(out)]
    assert cli(argv) == 0
    assert "mask agreement" in capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert figures["samples"] == 2 and figures["clicks"] == 6 and figures["size"] == 112
    assert 0.9 <= figures["mask_agreement_mean"] <= 1.0
    assert figures["logit_abs_diff"]["max"] > 1e-3  # bf16 really ran: far above float32 noise
