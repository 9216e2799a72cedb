"""The JSON written beside exported graphs: what a front end must know to feed them without this package.

One record per export directory (`metadata.json`): the network input size, where the normalisation
happens, the mask threshold, the click conventions, and for each graph its file, input and output
names, shapes (symbolic dimensions as strings) and dtypes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import SkipClickConfig

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1
THRESHOLD = 0.49  # the evaluation protocol's strict threshold on probabilities (SPEC 3.3)


def tensor_spec(name: str, shape: tuple[int | str, ...], dtype: str, doc: str) -> dict[str, Any]:
    """One graph input or output: `shape` holds ints for fixed and strings for symbolic dimensions."""
    return {"name": name, "shape": list(shape), "dtype": dtype, "doc": doc}


def points_doc(size: int) -> str:
    """How clicks enter the click graph (shared by every format)."""
    return (f"(batch, 2N, 3) rows (y, x, order) in network pixels of the {size}x{size} input, row first: positive "
            "clicks in rows 0..N-1, negative in N..2N-1, unused rows (-1, -1, -1); N may be any number >= 1 and "
            "padding rows never change the output. float64, so fractional clicks get the original's disk test "
            "(offsets subtracted in float64, rounded once to float32); integer clicks may be given as float64 too.")


def flip_doc(size: int) -> str:
    """The test-time flip recipe (the evaluation protocol's default), done by the caller around the graphs."""
    return (f"encode [images, images mirrored along W]; click with [prev, prev mirrored] and the points with x "
            f"replaced by ({size} - x) - 1 in the mirrored half (padding rows kept); average the logits of the first "
            "half and the mirrored-back second half, then apply the sigmoid")


def build_record(config: SkipClickConfig, size: int, fmt: str, layout: str,
                 graphs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The metadata record of an export of `config` at network size `size` (`fmt` 'onnx' or 'stablehlo')."""
    return {
        "format": fmt,
        "format_version": FORMAT_VERSION,
        "size": size,
        "patch_size": config.patch_size,
        "grid": size // config.patch_size,
        "layout": layout,
        "image": "RGB float32 in [0, 1], resized to size x size (bilinear, align_corners=True in the evaluation)",
        "normalisation": {"inside_graph": True, "mean": list(config.mean), "std": list(config.std)},
        "threshold": THRESHOLD,
        "threshold_rule": "mask = probabilities > threshold (strict)",
        "click_radius": config.click_radius,
        "points": points_doc(size),
        "prev_mask": "the previous click's probabilities (never thresholded); zeros before the first click",
        "flip": flip_doc(size),
        "graphs": graphs,
        "config": config.to_dict(),
    }


def write_metadata(directory: str | Path, record: dict[str, Any]) -> Path:
    """Write `record` as `directory/metadata.json` (the directory is an export being assembled)."""
    path = Path(directory) / METADATA_FILE
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """Read an export directory's metadata, with a clear error when it is not an export directory."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no {METADATA_FILE}; not a directory written by `skipclick export "
                                "--format onnx|stablehlo`")
    record = json.loads(path.read_text())
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {record.get('format_version')!r}, expected {FORMAT_VERSION}")
    return record
