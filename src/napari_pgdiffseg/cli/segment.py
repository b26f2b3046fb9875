"""`pgdiffseg segment` and `pgdiffseg demo`: image files in, labels and cells files out."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import PGDiffSegError
from ._args import add_config_args, add_model_arg, config_from_args, load_model_arg


DEMO_SEED = 20261125


def _expand_inputs(inputs: list[str], pattern: str) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            pats = [x.strip() for x in pattern.split(";") if x.strip()]
            files += sorted({q for pat in pats for q in p.glob(pat) if q.is_file()})
        elif p.is_file():
            files.append(p)
        else:
            raise PGDiffSegError(f"input {item} does not exist")
    if not files:
        raise PGDiffSegError(f"no input files found in {', '.join(inputs)} (pattern {pattern!r})")
    return files


def cmd_segment(args) -> int:
    from tqdm import tqdm

    from ..core.batch import CSV_NAME, segment_files
    from ..core.bundle import peek_bundle, resolve_model

    files = _expand_inputs(args.inputs, args.glob)
    calibration_from_args(args)  # a bad value is one line before anything runs
    # With a Dask scheduler the workers load the bundle (once each); here only its card is read.
    bundle = load_model_arg(args.model) if args.scheduler is None else resolve_model(args.model)
    config = config_from_args(args, bundle.card if args.scheduler is None else peek_bundle(bundle)[0])
    bar = tqdm(total=len(files), unit="file", disable=args.quiet)
    tile_bar = tqdm(unit="eval", leave=False, disable=args.quiet)

    def progress(plane, n_planes, p):
        tile_bar.total = p.evals_total
        tile_bar.n = p.evals_done
        tile_bar.set_description(f"plane {plane + 1}/{n_planes} tiles {p.tiles_done}/{p.tiles_total}")
        tile_bar.refresh()

    def on_file(i, n, row):
        bar.update(1)
        if row["status"] != "ok":
            tqdm.write(f"{row['file']}: {row['status']}")
        elif row.get("nan_pixels"):
            tqdm.write(f"{row['file']}: {row['nan_pixels']} pixel(s) without a phase (NaN) were labelled background")
        if row["status"] == "ok" and row.get("unlike_training") == "yes":
            tqdm.write(f"{row['file']}: warning: unlike the model's training images (unlikeness "
                       f"{row['unlikeness']:.1f}); check that the model fits this kind of image")

    rows = segment_files(files, bundle, config, args.out, overwrite=args.overwrite, on_file=on_file,
                         progress=progress, min_area=args.min_area, scheduler=args.scheduler,
                         workers=args.workers, calibration=calibration_from_args(args),
                         time_lapse=True if args.time_lapse else None, channel=args.channel)
    tile_bar.close()
    bar.close()
    n_err = sum(r["status"].startswith("error") for r in rows)
    n_ok = sum(r["status"] == "ok" for r in rows)
    print(f"{n_ok} segmented, {len(rows) - n_ok - n_err} skipped, {n_err} failed; "
          f"table: {Path(args.out) / CSV_NAME}")
    return 1 if n_err else 0


def cmd_demo(args) -> int:
    """Segment the plugin's real sample (or --image FILE, or --synthetic) and write labels, cells, figure, summary.

    The sample is scikit-image's real QPI cell, segmented with the model that fits it
    (qpi-cells) and scored against its hand-checked mask; --synthetic segments a synthetic
    frame with its truth using synthetic-demo; --image segments a file with --model
    (default: the default model).
    """
    from tqdm import tqdm

    from .._sample_data import SKIMAGE_CELL_MODEL, skimage_cell_truth
    from ..core.filejob import cells_path, output_metadata, output_path
    from ..core.files import read_image
    from ..core.files import write_tiff
    from ..core.metrics import foreground_iou, segmentation_scores
    from ..core.pipeline import segment
    from ..core.cells import InstanceConfig, cell_instances, foreground_classes, instance_dtype, summarize_planes
    from ..core.synthetic import SyntheticConfig, make_frame
    from ..figure import demo_figure

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = args.model
    if args.image:
        image, truth, name = read_image(args.image), None, Path(args.image).stem
    elif args.synthetic:
        image, truth = make_frame(DEMO_SEED, SyntheticConfig(shape=(512, 512), difficulty=0.5))
        name, model = "synthetic_qpi", model or "synthetic-demo"
        write_tiff(out / f"{name}.tif", image)
        write_tiff(out / f"{name}_truth.tif", truth)
    else:
        from skimage.data import cell

        image, truth, name, model = cell(), skimage_cell_truth(), "skimage_cell", model or SKIMAGE_CELL_MODEL
        write_tiff(out / f"{name}.tif", image)
        write_tiff(out / f"{name}_truth.tif", truth)
    bundle = load_model_arg(model)
    config = config_from_args(args, bundle.card)
    bar = tqdm(unit="eval", desc=f"{name} ({config.strategy})", disable=args.quiet)

    def progress(p):
        bar.total = p.evals_total
        bar.n = p.evals_done
        bar.refresh()

    result = segment(image, bundle, config, progress=progress)
    bar.close()
    names = bundle.card.class_names
    cells = cell_instances(result.labels, image, names, InstanceConfig.from_dict(bundle.card.instances))
    write_tiff(cells_path(out, name), cells.astype(instance_dtype(int(cells.max()))),
               metadata=output_metadata(bundle.card, "cells"))
    labels_path = write_tiff(output_path(out, name), result.labels, metadata=output_metadata(bundle.card, "classes"))
    counts = summarize_planes([result.labels], names, instances=[cells])
    parts = [f"{name} ({Path(str(bundle.path)).name}):"]
    if truth is not None:
        if truth.max() < bundle.n_classes:
            s = segmentation_scores(result.labels, truth, bundle.n_classes)
            parts.append(f"mIoU {s['miou']:.3f}, F1 {s['f1']:.3f},")
        parts.append(f"foreground IoU {foreground_iou(result.labels, truth):.3f},")
    parts.append(", ".join(f"{counts[f'{n}_cells']} {n}" for _, n in foreground_classes(names)) + ",")
    if config.noise_metrics:
        parts.append(f"noise SSIM {result.noise_ssim:.3f}, KLD {result.noise_kld:.3f},")
    parts.append(f"NFE {result.nfe}/tile x {result.n_tiles} tiles, {result.seconds:.1f} s on {result.device}")
    summary = " ".join(parts)
    if result.ood_warning:
        summary += f"; warning: {result.ood_warning}"
    fig = demo_figure(out / f"{name}_figure.png", image, result, bundle.card.colors, truth, title=summary)
    (out / f"{name}_summary.txt").write_text(summary + "\n")
    print(summary)
    print(f"wrote {labels_path}, {cells_path(out, name)}, {fig}")
    return 0


def add_calibration_args(p) -> None:
    g = p.add_argument_group("per-cell table (<name>_cells.csv): phase and dry mass")
    g.add_argument("--wavelength-nm", type=float, default=None, help="illumination wavelength in nm (dry mass)")
    g.add_argument("--pixel-size-um", type=float, default=None,
                   help="sample-plane pixel size in um (default: from OME/ImageJ TIFF metadata where present)")
    g.add_argument("--refractive-increment", type=float, default=0.18,
                   help="refractive increment alpha in mL/g = um^3/pg (default 0.18)")
    g.add_argument("--phase-scale", type=float, default=None,
                   help="radians per grey level, for images that are not in radians (e.g. 8-bit SLIM PNGs)")
    g.add_argument("--time-lapse", action="store_true",
                   help="the planes of stacks are time points: link cells across them into <name>_tracks.csv "
                        "and <name>_viability.png (automatic for OME/ImageJ TIFFs whose axes have T)")


def calibration_from_args(args):
    from ..core.measure import Calibration

    return Calibration(args.wavelength_nm, args.pixel_size_um, args.refractive_increment, args.phase_scale)


def add_parsers(sub, defaults) -> None:
    seg = sub.add_parser("segment", help="segment image files or folders into <name>_labels.tif and <name>_cells.tif")
    seg.add_argument("inputs", nargs="+", help="image files (TIFF, PNG) or folders")
    seg.add_argument("--out", required=True, help="output folder")
    add_model_arg(seg)
    seg.add_argument("--glob", default="*.[tp][in][fg]*;*.h5;*.hdf5;*.npy",
                     help="file patterns inside folders, ';'-separated (default: TIFF, PNG and qpformat's "
                          "qpimage HDF5 / numpy phase files)")
    seg.add_argument("--overwrite", action="store_true", help="redo files whose output exists")
    seg.add_argument("--channel", default=None, metavar="INDEX|NAME",
                     help="the phase channel of OME / ImageJ hyperstacks with a channel axis (an index, or an OME "
                          "channel name); T and Z planes are segmented one by one")
    seg.add_argument("--min-area", type=int, default=None,
                     help="smallest cell kept in <name>_cells.tif and counted, in pixels (default: the model's)")
    seg.add_argument("--quiet", action="store_true", help="no progress bars")
    seg.add_argument("--scheduler", default=None, metavar="local|ADDRESS",
                     help="spread the files over Dask workers: 'local' starts a LocalCluster on this machine, "
                          "an address (tcp://host:8786) uses a running cluster (default: one file after another here)")
    seg.add_argument("--workers", type=int, default=None,
                     help="worker processes of --scheduler local (default: one per core with one torch thread each; 1 with a GPU)")
    add_calibration_args(seg)
    add_config_args(seg)
    seg.set_defaults(func=cmd_segment)

    demo = sub.add_parser("demo", help="segment the real sample cell (or --image FILE, or --synthetic): labels, "
                                       "cells, figure, summary")
    demo.add_argument("--out", default="pgdiffseg-demo", help="output folder (default: pgdiffseg-demo)")
    demo.add_argument("--image", default=None, help="a frame of your own (TIFF, PNG) instead of the sample")
    demo.add_argument("--synthetic", action="store_true",
                      help="a synthetic frame with truth, segmented with synthetic-demo, instead of the sample")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_arg(demo)
    add_config_args(demo)
    demo.set_defaults(func=cmd_demo)
