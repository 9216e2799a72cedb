"""Fake predictors for the evaluation tests (no model needed)."""

from __future__ import annotations

import numpy as np


class DiskPredictor:
    """Probability 1 inside a disk around every positive click, 0 inside disks around negative clicks.

    Later clicks win over earlier ones, which makes the simulated sessions converge on blob-like objects.
    """

    def __init__(self, radius: float = 6.0) -> None:
        self.radius = radius
        self.calls: list[str] = []
        self._shape: tuple[int, int] | None = None
        self._prob: np.ndarray | None = None

    def reset(self) -> None:
        self.calls.append("reset")
        if self._shape is not None:
            self._prob = np.zeros(self._shape, np.float32)

    def set_image(self, image: np.ndarray) -> None:
        self.calls.append("set_image")
        assert image.ndim == 3 and image.shape[2] == 3
        self._shape = image.shape[:2]
        self._prob = np.zeros(self._shape, np.float32)

    def add_click(self, y: float, x: float, is_positive: bool) -> np.ndarray:
        self.calls.append("add_click")
        assert self._prob is not None and self._shape is not None
        yy, xx = np.ogrid[: self._shape[0], : self._shape[1]]
        disk = (yy - y) ** 2 + (xx - x) ** 2 <= self.radius**2
        self._prob[disk] = 1.0 if is_positive else 0.0
        return self._prob.copy()


class ScriptedPredictor:
    """Returns a fixed sequence of probability maps, one per click (the last one repeats)."""

    def __init__(self, maps: list[np.ndarray]) -> None:
        self.maps = maps
        self.clicks: list[tuple[float, float, bool]] = []

    def reset(self) -> None:
        self.clicks = []

    def set_image(self, image: np.ndarray) -> None:
        pass

    def add_click(self, y: float, x: float, is_positive: bool) -> np.ndarray:
        self.clicks.append((y, x, is_positive))
        return self.maps[min(len(self.clicks), len(self.maps)) - 1]
