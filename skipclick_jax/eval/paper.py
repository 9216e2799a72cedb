"""SkipClick's published NoC numbers (paper Tab. 1–5, SPEC §7), for side-by-side printing after a run.

All were produced with the protocol of SPEC §3 (cvpr sizes, zoom-in suppressed, flip TTA, threshold 0.49).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_WSESEG = {  # NoC@85, NoC@90 (Tab. 1/2, "+ Skip Connections" = SkipClick)
    "flickr_bobsleighs": (1.52, 2.08),
    "flickr_curling_stone": (2.61, 4.09),
    "flickr_ski_helmets": (7.27, 9.31),
    "flickr_snow_kites": (7.36, 8.93),
    "yt_sports": (10.23, 15.51),
    "flickr_curling_brooms": (8.56, 13.16),
    "flickr_ski_goggles": (9.06, 11.5),
    "flickr_ski_misc": (8.01, 11.49),
    "flickr_slalom_obstacles": (6.1, 9.62),
    "flickr_snowboards": (4.22, 5.94),
}

#: Dataset name → {metric: value} for the released SkipClick (DINOv2) weights.
PAPER_RESULTS: dict[str, dict[str, float]] = {
    "GrabCut": {"NoC@90": 1.44},
    "Berkeley": {"NoC@90": 2.45},
    "SBD": {"NoC@90": 6.18},
    "DAVIS": {"NoC@90": 4.94, "NoC@95": 11.92, "NoF@95": 158},
    "HQSeg": {"NoC@90": 6.00, "NoC@95": 9.89, "NoF@95": 608},
    "SHSeg": {"NoC@85": 1.44, "NoC@90": 2.52},
    **{f"WSESeg_{c}": {"NoC@85": a, "NoC@90": b} for c, (a, b) in _WSESEG.items()},
    "WSESeg average": {"NoC@85": 6.494, "NoC@90": 9.163},
}


def compare_with_paper(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Lines "name: metric ours (paper x)" for every evaluated dataset the paper reports."""
    lines = []
    for name, summary in summaries.items():
        reported = PAPER_RESULTS.get(name)
        if not reported:
            continue
        cells = []
        for key, value in reported.items():
            ours = summary.get(key)
            ours_txt = "?" if ours is None else (f"{ours:.3f}" if isinstance(ours, float) else str(ours))
            cells.append(f"{key} {ours_txt} (paper {value:g})")
        lines.append(f"  {name:<30} " + ", ".join(cells))
    return lines
