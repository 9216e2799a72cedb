"""`skipclick evaluate`: NoC evaluation with the original protocol (SPEC §3) on the paper's benchmarks.

    skipclick evaluate --checkpoint CKPT --datasets GrabCut,Berkeley,DAVIS,SBD,HQSeg --data-root DIR
    skipclick evaluate --checkpoint CKPT --datasets WSESeg,SHSeg --data-root DIR --out results.json
    skipclick evaluate --checkpoint random:tiny --datasets folder:my_images --mode fixed112 --iou-analysis --plot c.png

Dataset folders below ``--data-root`` (the original ``config.yml`` folder names; the dataset name also works):
GrabCut → GrabCut, Berkeley → Berkeley, DAVIS → DAVIS, SBD → sbd, HQSeg → hqseg44k, WSESeg_* → sports_tools,
SHSeg → SHSeg, PascalVOC → PascalVOC, COCO_MVal → COCO_MVal. ``--dataset-path NAME=PATH`` overrides one
(``WSESeg=PATH`` all ten classes). ``folder:PATH`` and ``coco-json:PATH`` entries are generic sources.

The module also runs on its own: ``python -m skipclick_jax.eval.command --checkpoint ... --datasets ...``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

RANDOM_BANNER = ("!" * 100 + "\n!!  RANDOM WEIGHTS ({what}): the NoC numbers below are MEANINGLESS; "
                 "this run only exercises the pipeline.\n" + "!" * 100)


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "evaluate", help="NoC evaluation with the original protocol (paper table, JSON, mIoU plot)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(run=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``evaluate`` options (shared by the subcommand and the standalone entry point)."""
    from .runner import DEFAULT_BATCH

    p.add_argument("--checkpoint", required=True,
                   help="original .pth, exported .safetensors or converted directory; random:<preset>[:<seed>] "
                        "for random weights (e.g. random:tiny, random:skipclick_vitb14_448)")
    p.add_argument("--datasets", required=True,
                   help="comma list: GrabCut, Berkeley, DAVIS, SBD, HQSeg, SHSeg, WSESeg (all 10 classes) or "
                        "WSESeg_<class>, PascalVOC, COCO_MVal, folder:PATH, coco-json:PATH")
    p.add_argument("--data-root", help="folder holding the datasets (config.yml folder names, see above)")
    p.add_argument("--dataset-path", action="append", default=[], metavar="NAME=PATH",
                   help="root of one dataset (repeatable); overrides --data-root")
    p.add_argument("--mode", default="cvpr",
                   help="network size: cvpr (448; DAVIS 672; HQSeg, WSESeg, SHSeg 896) or fixed<S> (default cvpr)")
    p.add_argument("--n-clicks", type=int, default=20, help="clicks per object (default 20)")
    p.add_argument("--min-n-clicks", type=int, default=1, help="clicks before early stopping is allowed (default 1)")
    p.add_argument("--target-iou", type=float, default=0.95,
                   help="stop an object at this IoU (default 0.95; values below 0.8 become 0.8, as the original)")
    p.add_argument("--thresh", type=float, default=0.49, help="mask = probability > THRESH (default 0.49)")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="disable horizontal-flip logit averaging")
    p.add_argument("--zoom-in", action="store_true",
                   help="SimpleClick's zoom-in from the 2nd click (NOT the paper's protocol; unbatched)")
    p.add_argument("--iou-analysis", action="store_true",
                   help="run all clicks on every object (target IoU 1.01) for the full mIoU-vs-clicks curve")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help=f"samples per compiled click call (default {DEFAULT_BATCH}; two groups are stepped in turn, "
                        "so 2·N samples are in flight); 1 = the plain session loop")
    p.add_argument("--batch-mode", choices=["exact", "vectorized"], default="exact",
                   help="exact: per-sample arithmetic identical to --batch 1 (default); vectorized: one batched "
                        "step with bigger matrix products (meant for accelerators; IoUs can differ from --batch 1 "
                        "by a pixel through float rounding)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="compute dtype (the protocol is float32)")
    p.add_argument("--out", help="write per-dataset metrics and per-sample clicks/IoUs as JSON")
    p.add_argument("--plot", help="write the mIoU-vs-clicks curves as a PNG (complete with --iou-analysis)")
    p.add_argument("--skip-corrupt", action="store_true",
                   help="skip samples whose files are missing or unreadable, with a warning (default: stop)")
    p.add_argument("--max-samples", type=int, help="evaluate only the first N objects of each dataset")
    p.add_argument("--ignore-value", type=int,
                   help="folder sources: mask value marking ignore pixels (label -1), e.g. 128")
    p.add_argument("--cache-dir", help="cache folder: compiled XLA programs (xla/) and the SBD index (datasets/)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _settings(args: argparse.Namespace) -> Any:
    from .runner import EvalSettings

    if args.n_clicks < 1 or args.min_n_clicks < 1:
        raise ValueError("--n-clicks and --min-n-clicks must be >= 1")
    if args.max_samples is not None and args.max_samples < 1:
        raise ValueError("--max-samples must be >= 1")
    # As scripts/evaluate_model.py: the IoU analysis runs every click (target 1.01); otherwise target >= 0.8.
    target = 1.01 if args.iou_analysis and args.min_n_clicks <= 1 else max(0.8, args.target_iou)
    return EvalSettings(mode=args.mode, max_clicks=args.n_clicks, target_iou=target, thresh=args.thresh,
                        min_clicks=args.min_n_clicks, flip=args.flip, zoom_in=args.zoom_in, batch=args.batch,
                        batch_mode=args.batch_mode, max_samples=args.max_samples)


def _run_key(args: argparse.Namespace, settings: Any, specs: list[Any]) -> dict[str, Any]:
    """What an evaluation's results depend on: a progress log is only resumed by the same evaluation.

    The batch size is left out (``exact`` batches give the session loop's results), the weights are
    identified by path and modification time."""
    import dataclasses

    checkpoint = Path(args.checkpoint)
    stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
    protocol = {k: v for k, v in dataclasses.asdict(settings).items() if k not in ("batch", "batch_mode")}
    vectorized = settings.batch > 1 and settings.batch_mode == "vectorized" and not settings.zoom_in
    return {"checkpoint": args.checkpoint, "checkpoint_mtime_ns": stamp, "dtype": args.dtype,
            "datasets": [[s.name, s.reader, str(s.root), s.size] for s in specs], "settings": protocol,
            "vectorized": vectorized, "ignore_value": args.ignore_value}


def run(args: argparse.Namespace) -> int:
    """Execute ``skipclick evaluate``; returns the exit status."""
    from .datasets import DatasetError
    from .progress import ResumeError

    try:
        return _run(args)
    except ResumeError as e:
        print(f"skipclick evaluate: error: {e}", file=sys.stderr)
        return 2
    except DatasetError as e:
        print(f"skipclick evaluate: error: {e}\n(pass --skip-corrupt to skip unreadable samples with a warning)",
              file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import jax

    from ..inference import enable_compilation_cache
    from .loop import plot_miou_curve, write_results_json
    from .metrics import WSESEG_CLASS_LABELS, format_results_table, format_wseseg_table, wseseg_average
    from .models import load_eval_model
    from .paper import compare_with_paper
    from .progress import ProgressLog
    from .runner import evaluate_spec, open_dataset, parse_dataset_paths, resolve_datasets

    settings = _settings(args)
    specs = resolve_datasets(args.datasets, args.data_root, parse_dataset_paths(args.dataset_path), args.mode)
    if args.cache_dir:
        enable_compilation_cache(Path(args.cache_dir) / "xla")
    model = load_eval_model(args.checkpoint, args.dtype)

    print(f"SkipClick NoC evaluation — {model.description}")
    if model.is_random:
        print(RANDOM_BANNER.format(what=args.checkpoint))
    sizes = ", ".join(f"{s.name} {s.size}" for s in specs)
    print(f"protocol: mode {args.mode} (network size: {sizes}); flip TTA {'on' if settings.flip else 'off'}; "
          f"zoom-in {'ON (not the paper protocol)' if settings.zoom_in else 'suppressed'}; threshold > "
          f"{settings.thresh}; {settings.max_clicks} clicks; target IoU {settings.target_iou}; {args.dtype}")
    batch_txt = "1 (session loop)" if settings.batch <= 1 or settings.zoom_in else \
        f"{settings.batch} ({settings.batch_mode})"
    print(f"execution: batch {batch_txt}; device {jax.devices()[0].platform}")

    log = None
    if args.out:  # every finished sample is logged, so a killed run resumes (eval/progress.py)
        log = ProgressLog(f"{args.out}.progress.jsonl", _run_key(args, settings, specs))
        if log.resumed:
            print(f"resuming: {log.resumed} samples were finished by an interrupted run ({log.path})")

    results = []
    for spec in specs:
        dataset = open_dataset(spec, args.skip_corrupt, args.cache_dir, args.ignore_value)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate_spec(model, spec, settings, dataset, progress=args.progress, log=log)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        if dataset.skipped:
            print(f"warning: {spec.name}: {len(dataset.skipped)} samples skipped (--skip-corrupt)", file=sys.stderr)
        results.append(result)
        n = len(result.samples)
        clicks = sum(len(s.ious) for s in result.samples)
        m = result.metrics
        nocs = " ".join(f"{k} {m[k]:.2f}" for k in ("NoC@85", "NoC@90", "NoC@95") if m.get(k) is not None)
        resumed = result.settings.get("resumed_samples", 0)
        timed = f" ({n - resumed} evaluated now)" if resumed else ""
        print(f"{spec.name}: {n} objects{timed}, {clicks} clicks; {result.elapsed_s:.1f} s "
              f"({result.samples_per_second:.2f} samples/s, {result.seconds_per_click:.4f} s/click; compilation "
              f"before that {result.settings['warm_up_s']:.1f} s); {nocs}", flush=True)
        if args.out:
            write_results_json(args.out, results)

    summaries = {r.name: r.metrics for r in results}
    timings = {r.name: (r.seconds_per_click, r.elapsed_s) for r in results}
    rates = {r.name: r.samples_per_second for r in results}
    wse = [n for n in summaries if n.startswith("WSESeg_") and n[7:] in WSESEG_CLASS_LABELS]
    table_rows = dict(summaries)
    if len(wse) > 1:
        table_rows[f"WSESeg average ({len(wse)} cl.)"] = wseseg_average({n: summaries[n] for n in wse})
    print(format_results_table(table_rows, n_clicks=settings.max_clicks, timings=timings,
                               model_name=model.description, samples_per_s=rates))
    if len(wse) > 1:
        print(format_wseseg_table({n: summaries[n] for n in wse}))

    total_samples = sum(len(r.samples) for r in results)
    total_clicks = sum(len(s.ious) for r in results for s in r.samples)
    total_s = sum(r.elapsed_s for r in results)
    if total_s > 0 and total_clicks:
        print(f"throughput: {total_samples} objects, {total_clicks} clicks in {total_s:.1f} s — "
              f"{total_samples / total_s:.2f} samples/s, {total_s / total_clicks:.4f} s/click")
    paper_protocol = (args.mode == "cvpr" and settings.flip and not settings.zoom_in and settings.thresh == 0.49
                      and settings.max_clicks == 20 and settings.min_clicks == 1 and args.dtype == "float32")
    if not model.is_random and paper_protocol:
        paper_rows = dict(summaries)
        if len(wse) == len(WSESEG_CLASS_LABELS):
            paper_rows["WSESeg average"] = wseseg_average(summaries)
        lines = compare_with_paper(paper_rows)
        if lines:
            print("paper (SkipClick DINOv2 weights, same protocol):")
            print("\n".join(lines))
    if args.out:
        print(f"results written to {write_results_json(args.out, results)}")
        log.finish()
    if args.plot:
        curves = {r.name: r.metrics["mIoU@k"] for r in results}
        if not args.iou_analysis:
            print("note: without --iou-analysis objects stop at the target IoU, so the mIoU curve ends at the "
                  "shortest click list", file=sys.stderr)
        print(f"mIoU curve written to {plot_miou_curve(args.plot, curves)}")
    if model.is_random:
        print(RANDOM_BANNER.format(what=args.checkpoint))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser (``python -m skipclick_jax.eval.command``)."""
    parser = argparse.ArgumentParser(prog="skipclick evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point with the same error handling as ``skipclick``'s."""
    from ..weights import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (CheckpointError, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"skipclick evaluate: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
