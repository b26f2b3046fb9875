"""`pgdiffseg evaluate`: tables in the paper's format from one command, on tiny models."""

import csv
import re

import pytest

from napari_pgdiffseg.cli import main

MEAN_SD = r"\d\.\d{3} \(\d\.\d{3}\)"
FAST = ["--synthetic", "4", "--synthetic-size", "48", "--inversion-steps", "5", "--sampling-steps", "5",
        "--device", "cpu", "--quiet"]


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_evaluate_two_folds_two_methods(tiny_bundle_dir, tmp_path):
    out = tmp_path / "ev"
    code = main(["evaluate", *FAST, "--bundle", str(tiny_bundle_dir), "--folds", "2", "--tables", "table2",
                 "--methods", "Prior x1", "Random x1", "--out", str(out)])
    assert code == 0
    md = (out / "tables.md").read_text()
    rows = re.findall(rf"^\| (Prior x1|Random x1) \| (\d+) \| {MEAN_SD} \| {MEAN_SD} \|.*$", md, re.M)
    assert sorted(rows) == [("Prior x1", "10"), ("Random x1", "5")]
    assert "mean (SD) over folds;" in md and "p (mIoU vs Prior x1)" in md
    [path] = out.glob("*_table2.csv")
    data = _csv(path)
    assert [(r["method"], r["nfe"], r["units"], r["n_units"], r["frames"]) for r in data] == [
        ("Random x1", "5", "folds", "2", "4"), ("Prior x1", "10", "folds", "2", "4")]
    assert all(0 <= float(r["miou"]) <= 1 for r in data)


def test_evaluate_nfe_curve_and_variants(tiny_bundle_dir, tmp_path):
    out = tmp_path / "ev"
    code = main(["evaluate", *FAST, "--bundle", str(tiny_bundle_dir), "--tables", "nfe", "variants",
                 "--nfe-sampling", "5", "2", "--nfe-inversion", "5", "2", "--out", str(out),
                 # every row but the paper's 300-NFE one (its place in the table: test_evaluation)
                 "--methods", "Prior 5+5", "Prior 2+2", "Prior 5+2", "Random x1 5", "Random x1 2",
                 "Forward t=0, 2 steps", "Random x5 5", "Prior, average + repeat (paper)", "Prior, renormalised",
                 "Prior, mixed (lambda=0.5)"])
    assert code == 0
    nfe = {r["method"]: int(r["nfe"]) for r in _csv(next(out.glob("*_nfe.csv")))}
    assert nfe == {"Prior 5+5": 10, "Prior 2+2": 4, "Prior 5+2": 7, "Random x1 5": 5, "Random x1 2": 2,
                   "Forward t=0, 2 steps": 2, "Random x5 5": 25}
    variants = [r["method"] for r in _csv(next(out.glob("*_variants.csv")))]
    assert variants == ["Prior, average + repeat (paper)", "Prior, renormalised", "Prior, mixed (lambda=0.5)"]
    png = (out / "nfe_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "mean (SD) over frames;" in (out / "tables.md").read_text()


def test_two_bundles_give_the_parameterisation_table(tiny_bundle_dir, tmp_path):
    from napari_pgdiffseg import create_bundle, save_bundle

    x0 = save_bundle(create_bundle("tiny", seed=1, prediction_type="sample"), tmp_path / "x0")
    out = tmp_path / "ev"
    code = main(["evaluate", *FAST, "--bundle", str(tiny_bundle_dir), str(x0), "--tables", "table2",
                 "--methods", "Prior x1", "Random x1", "--out", str(out)])
    assert code == 0
    md = (out / "tables.md").read_text()
    assert "LDM-S predicts sample" in md and "LDM-S predicts epsilon" in md
    side = md[md.index("parameterisation"):]
    assert len(re.findall(r"^\| .*: (Prior|Random) x1 \|", side, re.M)) == 4


@pytest.mark.parametrize("args, message", [
    (["--tables", "table9"], "unknown table(s) table9"),
    (["--train-folds"], "--train-folds needs --folds 2 or more"),
    (["--methods", "Prior x7"], "no row named 'Prior x7' in the tables table2, table3"),
    (["--methods", "U-Net (ResNet-18)"], "the U-Net row needs --baseline"),
])
def test_evaluate_errors_are_one_line(tiny_bundle_dir, tmp_path, capsys, args, message):
    code = main(["evaluate", *FAST, "--bundle", str(tiny_bundle_dir), *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_evaluate_needs_labelled_data(tmp_path, capsys):
    import numpy as np
    import tifffile

    d = tmp_path / "frames"
    d.mkdir()
    tifffile.imwrite(d / "a.tif", np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32))  # no mask
    code = main(["evaluate", "--data", str(d), "--out", str(tmp_path / "o")])
    assert code == 2 and "no image/mask pairs" in capsys.readouterr().err


def test_train_baseline_then_evaluate_it_in_table2(tiny_bundle_dir, tmp_path):
    base = tmp_path / "unet"
    code = main(["train-baseline", "--synthetic", "2", "--synthetic-seed", "3", "--steps", "2", "--batch", "2",
                 "--crop", "64", "--device", "cpu", "--out", str(base)])
    assert code == 0 and (base / "unet_baseline.safetensors").is_file()
    out = tmp_path / "ev"
    code = main(["evaluate", *FAST, "--bundle", str(tiny_bundle_dir), "--baseline", str(base), "--tables", "table2",
                 "--methods", "U-Net (ResNet-18)", "Prior x1", "--out", str(out)])
    assert code == 0
    rows = {r["method"]: r for r in _csv(next(out.glob("*_table2.csv")))}
    assert rows["U-Net (ResNet-18)"]["nfe"] == "1" and rows["U-Net (ResNet-18)"]["noise_kld"] == "nan"
    assert 0 <= float(rows["U-Net (ResNet-18)"]["miou"]) <= 1


def test_train_folds_trains_a_bundle_and_baseline_per_fold(tmp_path):
    out = tmp_path / "cv"
    code = main(["evaluate", *FAST, "--folds", "2", "--train-folds", "--preset", "tiny", "--tile-size", "64",
                 "--steps-autoencoder", "2", "--steps-ldm-p", "2", "--steps-ldm-s", "2", "--baseline-steps", "2",
                 "--tables", "table2", "--methods", "U-Net (ResNet-18)", "Prior x1", "--out", str(out)])
    assert code == 0
    for f in (0, 1):
        assert (out / f"fold{f}" / "bundle" / "pgdiffseg.json").is_file()
        assert (out / f"fold{f}" / "unet_baseline" / "unet_baseline.json").is_file()
    data = _csv(next(out.glob("*_table2.csv")))
    assert [(r["method"], r["units"], r["n_units"]) for r in data] == [
        ("U-Net (ResNet-18)", "folds", "2"), ("Prior x1", "folds", "2")]


def test_train_folds_continue_each_fold_model_and_refuse_another_folds(tmp_path, capsys):
    import json

    first, second = tmp_path / "cv", tmp_path / "cv2"
    train = ["--folds", "2", "--train-folds", "--preset", "tiny", "--tile-size", "64", "--steps-autoencoder", "1",
             "--steps-ldm-p", "1", "--steps-ldm-s", "2", "--tables", "table2", "--methods", "Prior x1"]
    assert main(["evaluate", *FAST, *train, "--out", str(first)]) == 0
    code = main(["evaluate", *FAST, *train, "--stages", "ldm_s", "--start-from", str(first / "fold{fold}" / "bundle"),
                 "--out", str(second)])
    assert code == 0
    for f in (0, 1):
        runs = json.loads((second / f"fold{f}" / "bundle" / "pgdiffseg.json").read_text())["provenance"]["training_runs"]
        assert [r["fold"] for r in runs] == [f, f]  # fold f's model, trained twice on fold f's frames
        assert runs[-1]["folds"] == 2 and runs[-1]["split_seed"] == 0
    assert [r["method"] for r in _csv(next(second.glob("*_table2.csv")))] == ["Prior x1"]
    # fold 1 continuing fold 0's model would score frames that model trained on: refused, one line
    swapped = tmp_path / "swapped"
    for f in (0, 1):
        (swapped / f"fold{f}").mkdir(parents=True)
        (swapped / f"fold{f}" / "bundle").symlink_to(first / f"fold{1 - f}" / "bundle")
    capsys.readouterr()
    code = main(["evaluate", *FAST, *train, "--stages", "ldm_s", "--start-from", str(swapped / "fold{fold}" / "bundle"),
                 "--out", str(tmp_path / "cv3")])
    err = capsys.readouterr().err
    assert code != 0 and "fold 0's model" in err and "records fold(s) [1]" in err and "Traceback" not in err
    # the fold models as they are, each on its own fold's test frames, and the swapped ones refused
    assert main(["evaluate", *FAST, "--folds", "2", "--fold-models", str(second / "fold{fold}" / "bundle"),
                 "--tables", "table2", "--methods", "Prior x1", "--out", str(tmp_path / "scored")]) == 0
    [row] = _csv(next((tmp_path / "scored").glob("*_table2.csv")))
    assert row["method"] == "Prior x1" and row["units"] == "folds" and row["n_units"] == "2"
    assert main(["evaluate", *FAST, "--folds", "2", "--fold-models", str(swapped / "fold{fold}" / "bundle"),
                 "--tables", "table2", "--out", str(tmp_path / "scored2")]) != 0
    assert "--fold-models" in capsys.readouterr().err
    assert main(["evaluate", *FAST, "--fold-models", str(second / "fold0" / "bundle"), "--out", str(tmp_path / "x")]) != 0
    assert "needs --folds 2 or more and {fold}" in capsys.readouterr().err


def test_train_folds_at_half_input_scale_trains_and_scores_at_frame_size(tmp_path):
    import json

    out = tmp_path / "cv"
    code = main(["evaluate", "--synthetic", "4", "--synthetic-size", "128", "--inversion-steps", "2",
                 "--sampling-steps", "2", "--device", "cpu", "--quiet", "--folds", "2", "--train-folds",
                 "--preset", "tiny", "--tile-size", "64", "--steps-ldm-s", "2", "--steps-autoencoder", "1",
                 "--steps-ldm-p", "1", "--crop-ldm", "32", "--baseline-steps", "2", "--input-scale", "0.5",
                 "--noise", "0.05", "--normalization", "background",
                 "--tables", "table2", "--methods", "U-Net (ResNet-18)", "Prior x1", "--out", str(out)])
    assert code == 0
    card = json.loads((out / "fold0" / "bundle" / "pgdiffseg.json").read_text())
    assert card["input_scale"] == 0.5 and card["normalization"]["method"] == "background"
    data = card["provenance"]["training_runs"][-1]["data"]
    assert data["input_scale"] == 0.5 and data["normalization"]["method"] == "background"
    rows = _csv(next(out.glob("*_table2.csv")))
    assert [r["method"] for r in rows] == ["U-Net (ResNet-18)", "Prior x1"]
    assert all(0.0 <= float(r["fg_iou"]) <= 1.0 and r["frames"] == "4" for r in rows), rows
