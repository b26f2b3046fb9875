"""The command line drives the same core: segment folders, train, info, demo; errors are one line."""

import csv
import json

import numpy as np
import pytest
import tifffile

from napari_pgdiffseg.cli import main

FAST = ["--inversion-steps", "5", "--sampling-steps", "5", "--no-noise-metrics", "--device", "cpu", "--quiet"]


@pytest.fixture
def bundle_dir(tiny_bundle_dir):
    return tiny_bundle_dir


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    tifffile.imwrite(d / "a.tif", rng.normal(size=(100, 120)).astype(np.float32))
    tifffile.imwrite(d / "b.tif", rng.integers(0, 255, size=(2, 64, 64)).astype(np.uint8))  # a stack
    tifffile.imwrite(d / "bad.tif", np.zeros((64, 64), np.float32))  # constant
    return d


def _rows(out):
    with open(out / "pgdiffseg_results.csv") as f:
        return {r["file"].split("/")[-1]: r for r in csv.DictReader(f)}


def test_segment_folder_writes_labels_and_csv_and_reports_bad_file(bundle_dir, folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(folder), "--out", str(out), "--bundle", str(bundle_dir), *FAST])
    assert code == 1  # one file failed
    rows = _rows(out)
    assert rows["a.tif"]["status"] == "ok" and rows["b.tif"]["status"] == "ok"
    assert rows["bad.tif"]["status"].startswith("error:") and "constant" in rows["bad.tif"]["status"]
    a = tifffile.imread(out / "a_labels.tif")
    assert a.shape == (100, 120) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 1, 2}
    assert tifffile.imread(out / "b_labels.tif").shape == (2, 64, 64)
    assert not (out / "bad_labels.tif").exists() and not (out / "bad_cells.tif").exists()
    cells = tifffile.imread(out / "a_cells.tif")  # one id per cell beside the class labels
    assert cells.shape == a.shape and cells.dtype == np.uint16
    assert ((cells > 0) <= (a > 0)).all()  # ids only on cell pixels (specks below min_area dropped)
    n_ids = len(np.unique(cells[cells > 0]))
    assert int(rows["a.tif"]["live_cells"]) + int(rows["a.tif"]["dead_cells"]) == n_ids
    assert rows["a.tif"]["cells_output"].endswith("a_cells.tif")
    assert tifffile.imread(out / "b_cells.tif").shape == (2, 64, 64)
    assert int(rows["a.tif"]["nfe"]) == 10
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    # Rerun: done files are skipped (resume), the bad one is retried.
    code = main(["segment", str(folder), "--out", str(out), "--bundle", str(bundle_dir), *FAST])
    rows = _rows(out)
    assert rows["a.tif"]["status"].startswith("skipped")
    assert "1 failed" in capsys.readouterr().out


@pytest.mark.slow
def test_segment_on_a_local_dask_cluster_matches_the_table_of_a_run_here(bundle_dir, folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(folder), "--out", str(out), "--bundle", str(bundle_dir), *FAST,
                 "--scheduler", "local", "--workers", "2"])
    assert code == 1  # bad.tif failed, on a worker, recorded in its row
    rows = _rows(out)
    assert [rows[f]["status"] for f in ("a.tif", "b.tif")] == ["ok", "ok"]
    assert "constant" in rows["bad.tif"]["status"]
    assert tifffile.imread(out / "b_labels.tif").shape == (2, 64, 64)
    assert "2 segmented, 0 skipped, 1 failed" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--scheduler", "nonsense"], "neither 'local' nor an address"),
    (["--scheduler", "local", "--workers", "0"], "workers must be a positive integer"),
    (["--scheduler", "tcp://127.0.0.1:1"], "cannot reach the Dask scheduler"),
])
def test_bad_scheduler_is_one_line_error(bundle_dir, folder, tmp_path, capsys, monkeypatch, flags, message):
    monkeypatch.setattr("napari_pgdiffseg.core.distributed.CONNECT_TIMEOUT", "1s")
    code = main(["segment", str(folder), "--out", str(tmp_path / "o"), "--bundle", str(bundle_dir), *FAST, *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_bundle_is_one_line_error(folder, tmp_path, capsys):
    code = main(["segment", str(folder), "--out", str(tmp_path / "o"), "--bundle", str(tmp_path / "none"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err and "Traceback" not in err


def test_bad_setting_is_one_line_error(bundle_dir, folder, tmp_path, capsys):
    code = main(["segment", str(folder), "--out", str(tmp_path / "o"), "--bundle", str(bundle_dir),
                 "--sampling-steps", "7", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "sampling_steps must divide 1000" in err


def test_info_prints_card(bundle_dir, capsys):
    assert main(["info", "--bundle", str(bundle_dir)]) == 0
    out = capsys.readouterr().out
    assert '"class_names"' in out and '"ldm_s"' in out


def test_demo_writes_truth_labels_figure_and_summary(bundle_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--synthetic", "--out", str(out), "--bundle", str(bundle_dir), *FAST]) == 0
    truth = tifffile.imread(out / "synthetic_qpi_truth.tif")
    labels = tifffile.imread(out / "synthetic_qpi_labels.tif")
    assert labels.shape == truth.shape == (512, 512) and set(np.unique(labels)) <= {0, 1, 2}
    png = (out / "synthetic_qpi_figure.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "synthetic_qpi_summary.txt").read_text()
    assert summary.count("\n") == 1 and "mIoU" in summary and "NFE 10/tile" in summary
    assert "mIoU" in capsys.readouterr().out
    assert tifffile.imread(out / "synthetic_qpi_cells.tif").shape == (512, 512)


def test_demo_default_is_the_real_sample_scored_against_its_hand_checked_mask(bundle_dir, tmp_path, capsys):
    from napari_pgdiffseg._sample_data import skimage_cell_truth

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--model", str(bundle_dir), *FAST]) == 0
    truth = tifffile.imread(out / "skimage_cell_truth.tif")
    assert truth.shape == (660, 550) and np.array_equal(truth, skimage_cell_truth())
    assert 0.03 < truth.mean() < 0.035  # the one cell covers ~3 % of the frame
    summary = (out / "skimage_cell_summary.txt").read_text()
    assert "foreground IoU" in summary and "skimage_cell" in capsys.readouterr().out


def test_models_lists_the_shipped_models(capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "slim-viability (default)" in text and "qpi-cells" in text and "synthetic-demo" in text
    assert "labels:    nuclei" in text and "labels:    whole cells" in text
    assert main(["models", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {e["name"]: e["labels"] for e in entries}["qpi-cells"] == "whole cells"
    assert all(e["held_out"] for e in entries)


def test_unknown_model_name_is_one_line(folder, tmp_path, capsys):
    code = main(["segment", str(folder), "--out", str(tmp_path / "o"), "--model", "hela-nuclei", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "neither a shipped model" in err and "slim-viability" in err


def test_demo_on_a_real_image(bundle_dir, tmp_path):
    from skimage.data import cell

    img = tmp_path / "cell.png"
    import imageio.v3 as iio

    iio.imwrite(img, cell())
    out = tmp_path / "demo"
    assert main(["demo", "--image", str(img), "--out", str(out), "--bundle", str(bundle_dir), *FAST]) == 0
    assert tifffile.imread(out / "cell_labels.tif").shape == (660, 550)
    assert "mIoU" not in (out / "cell_summary.txt").read_text()


def test_forced_write_error_leaves_no_partial_file(bundle_dir, folder, tmp_path, monkeypatch, capsys):
    def failing_write(path, data, **kw):
        with open(path, "wb") as f:
            f.write(b"II*\x00partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", failing_write)
    out = tmp_path / "out"
    code = main(["segment", str(folder / "a.tif"), "--out", str(out), "--bundle", str(bundle_dir), *FAST])
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["pgdiffseg_results.csv"]
    assert "No space left" in (out / "pgdiffseg_results.csv").read_text()
    code = main(["demo", "--out", str(tmp_path / "d"), "--bundle", str(bundle_dir), *FAST])
    assert code == 2 and "No space left" in capsys.readouterr().err
    assert not [p for p in (tmp_path / "d").iterdir() if p.suffix == ".tif" or p.name.startswith(".")]


def test_train_tiny_bundle_from_synthetic_data(tmp_path, capsys):
    out = tmp_path / "trained"
    args = ["train", "--synthetic", "4", "--preset", "tiny", "--out", str(out), "--steps-autoencoder", "4",
            "--steps-ldm-p", "3", "--steps-ldm-s", "3", "--crop-ldm", "64", "--batch-ldm", "2", "--device", "cpu",
            "--gradient-accumulation-steps", "2"]
    assert main(args) == 0
    card = json.loads((out / "pgdiffseg.json").read_text())
    assert card["provenance"]["training_runs"][-1]["config"]["gradient_accumulation_steps"] == 2
    assert main(["info", "--bundle", str(out)]) == 0
    assert '"training_runs"' in capsys.readouterr().out
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "x"), "--stages", "ldm_q"]) == 2


def test_bad_instance_settings_are_one_line(tmp_path, capsys):
    base = ["train", "--synthetic", "2", "--preset", "tiny", "--out", str(tmp_path / "x"), "--device", "cpu"]
    for bad, text in (("min_area=big", "min_area must be a number"), ("method=blobs", "instance method"),
                      ("min_area", "KEY=VALUE")):
        assert main([*base, "--instances", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and text in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_train_input_scale_is_recorded_and_checked(tmp_path, capsys):
    out = tmp_path / "half"
    args = ["train", "--synthetic", "2", "--preset", "tiny", "--out", str(out), "--stages", "ldm_s",
            "--steps-ldm-s", "2", "--crop-ldm", "64", "--batch-ldm", "2", "--device", "cpu", "--input-scale", "0.5"]
    assert main(args) == 0
    card = json.loads((out / "pgdiffseg.json").read_text())
    assert card["input_scale"] == 0.5
    assert card["provenance"]["training_runs"][-1]["data"]["input_scale"] == 0.5
    capsys.readouterr()
    assert main([*args[:-1], "9", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "input_scale must be a number" in err and not (tmp_path / "bad").exists()


def test_train_timestep_power_and_lr_schedule_are_recorded_and_checked(tmp_path, capsys):
    out = tmp_path / "highT"
    args = ["train", "--synthetic", "2", "--preset", "tiny", "--out", str(out), "--stages", "ldm_s",
            "--steps-ldm-s", "2", "--crop-ldm", "64", "--batch-ldm", "2", "--device", "cpu", "--lr-schedule", "cosine",
            "--timestep-power", "3"]
    assert main(args) == 0
    run = json.loads((out / "pgdiffseg.json").read_text())["provenance"]["training_runs"][-1]
    assert run["config"]["ldm_s"]["timestep_power"] == 3.0 and run["config"]["ldm_p"]["timestep_power"] == 1.0
    assert run["config"]["ldm_s"]["lr_schedule"] == "cosine" and run["config"]["autoencoder"]["lr_schedule"] == "constant"
    capsys.readouterr()
    assert main([*args[:-1], "0", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "timestep_power must be a number" in err and not (tmp_path / "bad").exists()


def _bundle_with_card(bundle_dir, tmp_path, **card):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    path = copy / "pgdiffseg.json"
    data = json.loads(path.read_text())
    data.update(card)
    path.write_text(json.dumps(data))
    return copy


def test_segment_starts_from_the_model_cards_settings_and_flags_win(bundle_dir, folder, tmp_path):
    model = _bundle_with_card(bundle_dir, tmp_path, segment={"flips": 2})
    a = tmp_path / "card"
    main(["segment", str(folder / "a.tif"), "--out", str(a), "--model", str(model), *FAST])
    b = tmp_path / "flag"
    main(["segment", str(folder / "a.tif"), "--out", str(b), "--model", str(model), "--flips", "1", *FAST])
    assert int(_rows(a)["a.tif"]["nfe"]) == 2 * int(_rows(b)["a.tif"]["nfe"]) == 2 * (5 + 5)


def test_a_card_naming_an_unknown_setting_is_one_line(bundle_dir, folder, tmp_path, capsys):
    model = _bundle_with_card(bundle_dir, tmp_path, segment={"flipz": 2})
    code = main(["segment", str(folder / "a.tif"), "--out", str(tmp_path / "o"), "--model", str(model), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "unknown setting(s) flipz" in err and "Traceback" not in err


def test_train_minutes_fine_tunes_with_a_hold_out_report(tmp_path, capsys, tiny_bundle_dir):
    from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

    for sub in ("images", "masks"):
        (tmp_path / "data" / sub).mkdir(parents=True)
    for i in range(2):
        img, lab = make_frame(20 + i, SyntheticConfig(shape=(96, 96)))[:2]
        tifffile.imwrite(tmp_path / "data" / "images" / f"f{i}.tif", img)
        tifffile.imwrite(tmp_path / "data" / "masks" / f"f{i}.tif", lab)
    out = tmp_path / "tuned"
    args = ["train", "--start-from", str(tiny_bundle_dir), "--data", str(tmp_path / "data"), "--minutes", "0.02",
            "--out", str(out), "--device", "cpu", "--crop-ldm", "64", "--batch-ldm", "2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "held out: the bottom 20 %" in text and "starting model: foreground IoU" in text
    assert "new model:      foreground IoU" in text and f"written to {out}" in text
    card = json.loads((out / "pgdiffseg.json").read_text())
    run = card["provenance"]["training_runs"][-1]
    assert run["command"].startswith("pgdiffseg train --start-from") and run["fine_tune"]["minutes"] == 0.02
    assert run["fine_tune"]["batch_size"] == 2 and run["fine_tune"]["crop"] == 64
    # Without a model to start from, or with synthetic frames: one line, nothing written.
    for bad, msg in ((["--start-from", ""], "--start-from"), (["--synthetic", "2"], "--synthetic is not used")):
        a = [x for x in args if x not in ("--out", str(out))] + ["--out", str(tmp_path / "bad")]
        if bad[0] == "--start-from":
            i = a.index("--start-from")
            a = a[:i] + a[i + 2:]
        else:
            a += bad
        assert main(a) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err and not (tmp_path / "bad").exists()


def test_segment_writes_a_per_cell_table_with_dry_mass(bundle_dir, folder, tmp_path):
    out = tmp_path / "out"
    main(["segment", str(folder / "a.tif"), str(folder / "b.tif"), "--out", str(out), "--bundle", str(bundle_dir),
          *FAST, "--wavelength-nm", "633", "--pixel-size-um", "0.2"])
    rows = _rows(out)
    with open(out / "a_cells.csv") as f:
        cells = list(csv.DictReader(f))
    ids = tifffile.imread(out / "a_cells.tif")
    assert [int(c["cell_id"]) for c in cells] == sorted(int(v) for v in np.unique(ids[ids > 0]))
    for c in cells:  # a.tif is float: radians; the masses follow m = lambda/(2 pi alpha) sum(phi) px^2
        assert int(c["area_px"]) == int((ids == int(c["cell_id"])).sum())
        m = 0.633 / (2 * np.pi * 0.18) * float(c["integrated_phase_rad"]) * 0.04
        assert float(c["dry_mass_pg"]) == pytest.approx(m, rel=1e-4)
    assert rows["a.tif"]["mass_note"] == "" and rows["a.tif"]["cells_table"] == "a_cells.csv"
    assert cells, "the tiny model finds cells in a.tif"
    for name in ("live", "dead"):
        masses = [float(c["dry_mass_pg"]) for c in cells if c["class"] == name]
        total = rows["a.tif"][f"{name}_dry_mass_total_pg"]
        assert (float(total) == pytest.approx(sum(masses), rel=1e-3)) if masses else total == ""
    # b.tif holds grey levels (uint8) of a stack: no masses without a phase scale, and the table says why.
    text = (out / "b_cells.csv").read_text().splitlines()
    assert text[0].startswith("# dry mass needs the phase scale") and text[1].startswith("plane,cell_id,class")
    assert "phase scale" in rows["b.tif"]["mass_note"]
    assert main(["segment", str(folder / "a.tif"), "--out", str(tmp_path / "x"), "--bundle", str(bundle_dir),
                 "--pixel-size-um", "-1"]) == 2


def test_time_lapse_stacks_get_tracks_and_a_viability_plot(bundle_dir, tmp_path):
    rng = np.random.default_rng(3)
    d = tmp_path / "tl"
    d.mkdir()
    stack = rng.normal(size=(4, 64, 64)).astype(np.float32)
    tifffile.imwrite(d / "hyper.tif", stack, imagej=True, metadata={"axes": "TYX"})  # axes say T
    tifffile.imwrite(d / "plain.tif", stack)  # a plain stack: planes, not time, unless --time-lapse
    out = tmp_path / "out"
    main(["segment", str(d), "--out", str(out), "--bundle", str(bundle_dir), *FAST])
    rows = _rows(out)
    assert rows["hyper.tif"]["tracks_table"] == "hyper_tracks.csv" and rows["plain.tif"]["tracks_table"] == ""
    text = (out / "hyper_tracks.csv").read_text().splitlines()
    assert text[0].startswith("track_id,first_frame,last_frame,frames") and len(text) - 1 == int(rows["hyper.tif"]["tracks"])
    assert (out / "hyper_viability.png").read_bytes()[:4] == b"\x89PNG"
    out2 = tmp_path / "out2"
    main(["segment", str(d / "plain.tif"), "--out", str(out2), "--bundle", str(bundle_dir), *FAST, "--time-lapse"])
    assert (out2 / "plain_tracks.csv").is_file()


def test_hyperstack_channels_are_chosen_never_taken_for_planes(bundle_dir, tmp_path, capsys):
    rng = np.random.default_rng(4)
    d = tmp_path / "hs"
    d.mkdir()
    data = rng.normal(size=(3, 2, 48, 48)).astype(np.float32)  # T, C, Y, X
    tifffile.imwrite(d / "movie.ome.tif", data, metadata={"axes": "TCYX", "Channel": {"Name": ["phase", "fluo"]}})
    out = tmp_path / "out"
    assert main(["segment", str(d), "--out", str(out), "--bundle", str(bundle_dir), *FAST]) == 1
    row = _rows(out)["movie.ome.tif"]
    assert "2 channels on its C axis (0 (phase), 1 (fluo))" in row["status"] and "--channel" in row["status"]
    assert main(["segment", str(d), "--out", str(out), "--bundle", str(bundle_dir), *FAST, "--channel", "phase"]) == 0
    row = _rows(out)["movie.ome.tif"]
    assert row["status"] == "ok" and row["planes"] == "3" and row["tracks_table"]  # T: a time-lapse of 3 frames
    assert tifffile.imread(out / "movie.ome_labels.tif").shape == (3, 48, 48)
    assert main(["segment", str(d), "--out", str(tmp_path / "o2"), "--bundle", str(bundle_dir), *FAST,
                 "--channel", "dapi"]) == 1
    assert "no channel named 'dapi'" in _rows(tmp_path / "o2")["movie.ome.tif"]["status"]


def test_train_pseudo_labels_label_the_unlabelled_frames_with_the_teacher(tmp_path, capsys, tiny_bundle_dir):
    import tifffile

    from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

    data = tmp_path / "frames"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(3):
        img, lab = make_frame(i, SyntheticConfig(shape=(128, 128)))
        tifffile.imwrite(data / "images" / f"f{i}.tif", img)
        if i == 0:
            tifffile.imwrite(data / "masks" / f"f{i}.tif", lab)
    out = tmp_path / "student"
    args = ["train", "--data", str(data), "--start-from", str(tiny_bundle_dir), "--stages", "ldm_s",
            "--steps-ldm-s", "2", "--crop-ldm", "64", "--batch-ldm", "2", "--device", "cpu",
            "--pseudo-labels", str(tiny_bundle_dir), "--pseudo-flips", "2", "--out", str(out)]
    assert main(args) == 0
    assert "(2 frame(s) pseudo-labelled by" in capsys.readouterr().out
    data_desc = json.loads((out / "pgdiffseg.json").read_text())["provenance"]["training_runs"][-1]["data"]
    assert data_desc["pseudo_labels"]["frames"] == 2 and data_desc["pseudo_labels"]["names"] == ["f1.tif", "f2.tif"]
    assert data_desc["pseudo_labels"]["segment"]["flips"] == 2
    assert data_desc["pseudo_labels"]["segment"]["flip_scope"] == "sampling" and data_desc["files_with_masks"] == 1
    for bad, text in ((["--pseudo-flips", "2"], "give the teacher with --pseudo-labels"),
                      (["--pseudo-labels", str(tiny_bundle_dir), "--minutes", "1"], "not used by a fine-tune")):
        base = ["train", "--data", str(data), "--start-from", str(tiny_bundle_dir), "--out", str(tmp_path / "bad")]
        assert main([*base, *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and text in err and not (tmp_path / "bad").exists()
