"""The original evaluation predictor (SPEC 3.3) in PyTorch: suppressed ZoomIn + sigmoid + flip TTA.

Independent of `skipclick_jax`. Per click: concat(image, prev) at H×W → bilinear align_corners=True to
S×S, clicks mapped to (S·y/H, S·x/W) in float64, batch [x, flip(x)] with x'' = S − x' − 1, forward,
average the two logits (second flipped back), sigmoid, resize to H×W (align_corners=True).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .skipclick import ReferenceSkipClick


class ReferencePredictor:
    def __init__(self, model: ReferenceSkipClick, size: int = 448, flip: bool = True):
        self.model, self.size, self.flip = model.eval(), size, flip
        self.image = self.prev = None
        self.clicks: list[tuple[int, int, bool]] = []

    def set_image(self, image: np.ndarray) -> None:
        """image: H×W×3 uint8 (→ /255, as torchvision's ToTensor) or float32 in [0, 1]."""
        t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        self.image = (t.float().div(255) if t.dtype == torch.uint8 else t.float())[None]
        self.prev = torch.zeros_like(self.image[:, :1])
        self.clicks = []

    def _points(self, clicks) -> torch.Tensor:
        """The original get_points_nd: positives then negatives, each padded to max(#pos, #neg, 1)."""
        n = max(1, *(sum(1 for c in cl if c[2] == s) for cl in clicks for s in (True, False)))
        rows = []
        for cl in clicks:
            pos = [(y, x, i) for i, (y, x, p) in enumerate(cl) if p]
            neg = [(y, x, i) for i, (y, x, p) in enumerate(cl) if not p]
            rows.append(pos + [(-1, -1, -1)] * (n - len(pos)) + neg + [(-1, -1, -1)] * (n - len(neg)))
        return torch.tensor(np.array(rows, dtype=np.float64))

    @torch.no_grad()
    def add_click(self, y: int, x: int, is_positive: bool) -> np.ndarray:
        self.clicks.append((y, x, is_positive))
        h, w = self.image.shape[2:]
        s = self.size
        x4 = F.interpolate(torch.cat([self.image, self.prev], 1), size=(s, s), mode="bilinear", align_corners=True)
        clicks = [[(s * cy / h, s * cx / w, p) for cy, cx, p in self.clicks]]
        if self.flip:
            x4 = torch.cat([x4, torch.flip(x4, dims=[3])], 0)
            clicks = clicks + [[(cy, s - cx - 1, p) for cy, cx, p in clicks[0]]]
        logits = self.model(x4, self._points(clicks))
        if self.flip:
            logits = 0.5 * (logits[:1] + torch.flip(logits[1:], dims=[3]))
        prob = F.interpolate(torch.sigmoid(logits), size=(h, w), mode="bilinear", align_corners=True)
        self.prev = prob
        return prob[0, 0].numpy()
