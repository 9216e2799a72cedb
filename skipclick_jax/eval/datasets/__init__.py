"""Evaluation dataset readers and the name registry (SPEC §3.8, §4).

>>> ds = get_dataset("GrabCut", "/data/GrabCut")        # doctest: +SKIP
>>> for sample in ds: ...                               # EvalSample(id, image, gt)   # doctest: +SKIP
>>> eval_size("DAVIS")                                  # network input size in --eval-mode cvpr
(672, 672)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .base import DatasetError, EvalDataset, EvalSample
from .coco_json import CocoJsonDataset
from .folder import FolderDataset, read_object_mask
from .hqseg import HQSegDataset
from .paired import BerkeleyDataset, CocoMValDataset, DavisDataset, GrabCutDataset
from .pascalvoc import PascalVOCDataset
from .sbd import SBDDataset
from .wseseg import WSESEG_CLASSES, SHSegDataset, WSESegDataset

__all__ = [
    "DATASET_NAMES", "WSESEG_CLASSES", "WSESEG_DATASETS", "BerkeleyDataset", "CocoJsonDataset",
    "CocoMValDataset", "DatasetError", "DavisDataset", "EvalDataset", "EvalSample", "FolderDataset",
    "GrabCutDataset", "HQSegDataset", "PascalVOCDataset", "SBDDataset", "SHSegDataset", "WSESegDataset",
    "canonical_name", "eval_size", "expand_dataset_names", "get_dataset", "parse_eval_mode",
    "read_object_mask",
]

WSESEG_DATASETS: tuple[str, ...] = tuple(f"WSESeg_{c}" for c in WSESEG_CLASSES)

_SIMPLE: dict[str, type[EvalDataset]] = {
    "GrabCut": GrabCutDataset,
    "Berkeley": BerkeleyDataset,
    "DAVIS": DavisDataset,
    "SBD": SBDDataset,
    "HQSeg": HQSegDataset,
    "SHSeg": SHSegDataset,
    "PascalVOC": PascalVOCDataset,
    "COCO_MVal": CocoMValDataset,
    "folder": FolderDataset,
    "coco-json": CocoJsonDataset,
}

#: Every name :func:`get_dataset` accepts (case-insensitive).
DATASET_NAMES: tuple[str, ...] = (*list(_SIMPLE)[:5], *WSESEG_DATASETS, *list(_SIMPLE)[5:])
_CANONICAL = {n.lower(): n for n in DATASET_NAMES}


def canonical_name(name: str) -> str:
    """The registered spelling of ``name`` (case-insensitive), or ValueError listing the choices."""
    try:
        return _CANONICAL[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASET_NAMES)} "
                         f"(or 'WSESeg' for all ten classes)") from None


def get_dataset(name: str, root: str | Path, skip_corrupt: bool = False, **kwargs: Any) -> EvalDataset:
    """Build the reader for dataset ``name`` rooted at ``root``.

    ``root`` is the folder the reference's ``config.yml`` points to (for WSESeg classes: the WSESeg root; for
    ``coco-json``: the JSON file or a folder with ``annotations.json``). Extra keyword arguments go to the
    reader (e.g. ``split``/``cache_dir`` for SBD, ``ignore_value`` for ``folder``, ``image_dir`` for
    ``coco-json``).
    """
    name = canonical_name(name)
    if name.startswith("WSESeg_"):
        return WSESegDataset(root, name[len("WSESeg_"):], skip_corrupt=skip_corrupt, **kwargs)
    return _SIMPLE[name](root, skip_corrupt=skip_corrupt, **kwargs)


def expand_dataset_names(names: str | Iterable[str]) -> list[str]:
    """Split a comma list and expand ``WSESeg`` to its ten classes (paper order); names are canonicalised."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        out.extend(WSESEG_DATASETS if item.lower() == "wseseg" else [canonical_name(item)])
    return out


def parse_eval_mode(mode: str) -> str | tuple[int, int]:
    """``"cvpr"`` → ``"cvpr"``; ``"fixed<H>"`` → (H, H); ``"fixed<H>,<W>"`` → (H, W)."""
    mode = mode.strip()
    if mode == "cvpr":
        return mode
    if mode.startswith("fixed"):
        parts = mode[len("fixed"):].split(",")
        try:
            sizes = [int(p) for p in parts]
        except ValueError:
            sizes = []
        if len(sizes) in (1, 2) and all(s > 0 for s in sizes):
            return (sizes[0], sizes[-1])
    raise ValueError(f"invalid eval mode {mode!r}: use 'cvpr', 'fixed<H>' or 'fixed<H>,<W>' (e.g. fixed448)")


def eval_size(name: str, mode: str = "cvpr") -> tuple[int, int]:
    """Network input size (H, W) for dataset ``name`` under ``--eval-mode`` ``mode``.

    cvpr: DAVIS 672; HQSeg, WSESeg_* and SHSeg 896; everything else 448 (SPEC §3.8).
    """
    parsed = parse_eval_mode(mode)
    if isinstance(parsed, tuple):
        return parsed
    base = name.strip()
    low = base.lower()
    if low == "davis":
        return (672, 672)
    if low in ("hqseg", "shseg") or low.startswith("wseseg"):
        return (896, 896)
    return (448, 448)
