"""`skipclick demo` on the bundled image (package data), run from an unrelated working directory."""

from __future__ import annotations

import cv2

from skipclick_jax.cli import main as cli


def test_demo_runs_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the bundled image must not be looked up relative to the source tree
    assert cli(["demo", "--preset", "tiny", "--clicks", "3", "--out", "overlay.png"]) == 0
    out = capsys.readouterr().out
    assert "RANDOM weights" in out and "network size 112" in out  # the preset's training size by default
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 3] and rows[0][1] == "positive"
    overlay = cv2.imread(str(tmp_path / "overlay.png"))
    assert overlay is not None and overlay.shape == (375, 500, 3)
