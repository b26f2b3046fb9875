"""Fine-tuning on the user's pairs (core.training.finetune): checks, hold-out, budget, cancel, card."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from napari_pgdiffseg import create_bundle, load_bundle, save_bundle
from napari_pgdiffseg.core.errors import ConfigError, InputImageError, TrainingCancelled
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame
from napari_pgdiffseg.core.training import FineTuneConfig, check_pairs, fine_tune, holdout_split, pairs_from_folder
from napari_pgdiffseg.core.training.finetune import verdict

NAMES = ("background", "live", "dead")


def _frames(n, size=96):
    out = [make_frame(10 + i, SyntheticConfig(shape=(size, size))) for i in range(n)]
    return [f[0] for f in out], [f[1] for f in out]


@pytest.fixture
def start_dir(tmp_path):
    return save_bundle(create_bundle("tiny", seed=0), tmp_path / "start")


def test_check_pairs_names_the_problem_and_the_fix():
    img, lab = _frames(1)
    with pytest.raises(InputImageError, match=r"image is 96x96 but its labels are 40x40.*pixel for pixel"):
        check_pairs(img, [np.zeros((40, 40), np.uint8)], ["a"], NAMES)
    ids = (np.arange(96 * 96).reshape(96, 96) % 9).astype(np.uint16)
    with pytest.raises(InputImageError, match=r"value\(s\) 3, 4, 5, 6, 7, 8, but .*0 background, 1 live, 2 dead.*cell ids"):
        check_pairs(img, [ids], ["a"], NAMES)
    with pytest.raises(InputImageError, match="no object"):
        check_pairs(img, [np.zeros((96, 96), np.uint8)], ["a"], NAMES)
    with pytest.raises(InputImageError, match="whole numbers"):
        check_pairs(img, [np.full((96, 96), 0.5)], ["a"], NAMES)
    with pytest.raises(InputImageError, match="no training pairs"):
        check_pairs([], [], [], NAMES)


def test_cell_ids_become_one_class_and_stacks_become_planes():
    img, _ = _frames(2)
    ids = np.zeros((96, 96), np.uint16)
    ids[10:20, 10:20], ids[10:20, 20:30] = 300, 301  # two touching cells, ids beyond the classes
    pairs = check_pairs([np.stack(img)], [np.stack([ids, ids])], ["stack"], ("background", "cell"), "instances")
    assert pairs.names == ["stack [plane 1]", "stack [plane 2]"]
    assert set(np.unique(pairs.masks[0])) == {0, 1} and pairs.masks[0].dtype == np.uint8
    assert pairs.instances[0].max() == 2  # touching cells stay two objects


def test_holdout_frames_or_strips():
    img, lab = _frames(6)
    pairs = check_pairs(img, lab, [f"f{i}" for i in range(6)], NAMES)
    split = holdout_split(pairs, 0.2, seed=0)
    assert "1 of 6 frames held out" in split.how
    assert len(split.held) == 1 and len(split.train) == 5  # round(6 * 0.2) whole frames
    assert not set(split.held.names) & set(split.train.names)
    few = check_pairs(img[:2], lab[:2], ["a", "b"], NAMES)
    split = holdout_split(few, 0.25, seed=0)
    assert [m.shape for m in split.train.masks] == [(72, 96)] * 2 and [m.shape for m in split.held.masks] == [(24, 96)] * 2
    np.testing.assert_array_equal(np.vstack([split.train.masks[0], split.held.masks[0]]), few.masks[0])
    assert "bottom 25 %" in split.how
    none = holdout_split(few, 0.0)
    assert len(none.held) == 0 and len(none.train) == 2
    small = np.zeros((20, 96), np.uint8)
    small[5:10, 5:10] = 1
    tiny = check_pairs([img[0][:20]], [small], ["small"], NAMES)
    assert len(holdout_split(tiny, 0.2).held) == 0  # too small to split: trained whole, said so
    assert "small" in holdout_split(tiny, 0.2).how


def test_config_needs_an_end_and_valid_values():
    with pytest.raises(ConfigError, match="training needs an end"):
        FineTuneConfig(minutes=0, steps=0)
    with pytest.raises(ConfigError, match="'train' must be one of"):
        FineTuneConfig(train="everything")
    with pytest.raises(ConfigError, match="holdout"):
        FineTuneConfig(holdout=0.9)
    assert FineTuneConfig(minutes=0, steps=5).seconds is None and FineTuneConfig(minutes=2).seconds == 120


def test_verdict_warns_when_not_better():
    assert verdict({"frames": 1, "fg_iou": 0.5, "object_f1": 0.5}, {"frames": 1, "fg_iou": 0.6, "object_f1": 0.1}) \
        == (True, "")
    better, warning = verdict({"frames": 1, "fg_iou": 0.5, "object_f1": 0.5}, {"frames": 1, "fg_iou": 0.5,
                                                                               "object_f1": 0.5})
    assert better is False and "not better" in warning
    assert verdict({}, {})[0] is None


def test_fine_tune_writes_a_bundle_with_both_scores_and_its_parent(start_dir, tmp_path):
    img, lab = _frames(2)
    pairs = check_pairs(img, lab, ["a", "b"], NAMES)
    seen = []
    r = fine_tune(start_dir, pairs, FineTuneConfig(minutes=None, steps=4, batch_size=2, crop=64, device="cpu"),
                  tmp_path / "new", on_progress=seen.append, log=lambda s: None)
    phases = [p.phase for p in seen]
    assert phases[0] == "scoring the starting model" and phases[-1] == "saving" and phases.count("training") == 4
    assert [p.step.step for p in seen if p.step] == [1, 2, 3, 4] and len(r.losses) == 4
    assert r.kind == "bundle" and r.steps == 4 and r.before["frames"] == 2 and r.after["frames"] == 2
    card = json.loads((tmp_path / "new" / "pgdiffseg.json").read_text())
    assert card["name"] == "new" and card["ood"] == {}  # 2 frames: too few for a reference, and said so
    assert any("no reference of its training images" in m for m in r.messages)
    assert card["scores"]["hold-out: fg_iou"].startswith(f"{r.after['fg_iou']:.3f}")
    assert card["scores"]["hold-out, starting model: fg_iou"].startswith(f"{r.before['fg_iou']:.3f}")
    run = card["provenance"]["training_runs"][-1]
    assert run["parent"] == str(start_dir) and run["holdout"]["better"] == r.better
    assert run["data"]["held_out"] == ["a (rows 76-95)", "b (rows 76-95)"]
    assert not (tmp_path / "new.ckpt").exists()
    # The new model loads and keeps the parent's other stages bit for bit.
    new, old = load_bundle(tmp_path / "new"), load_bundle(start_dir)
    for a, b in zip(new.ldm_p.parameters(), old.ldm_p.parameters()):
        assert (a == b).all()
    assert any((a != b).any() for a, b in zip(new.ldm_s.parameters(), old.ldm_s.parameters()))


def test_time_budget_ends_training(start_dir, tmp_path):
    img, lab = _frames(1)
    pairs = check_pairs(img, lab, ["a"], NAMES)
    t0 = time.monotonic()
    r = fine_tune(start_dir, pairs, FineTuneConfig(minutes=0.03, holdout=0, batch_size=2, crop=64, device="cpu"),
                  tmp_path / "new", log=lambda s: None)
    assert r.steps >= 1 and time.monotonic() - t0 < 30
    assert r.better is None and "not checked" in r.warning


def test_cancel_keeps_the_checkpoint_and_writes_no_bundle(start_dir, tmp_path):
    img, lab = _frames(1)
    pairs = check_pairs(img, lab, ["a"], NAMES)
    cancel = threading.Event()

    def on_progress(p):
        if p.step is not None and p.step.step == 3:
            cancel.set()

    with pytest.raises(TrainingCancelled, match="checkpoint is kept"):
        fine_tune(start_dir, pairs, FineTuneConfig(minutes=None, steps=1000, batch_size=2, crop=64, device="cpu"),
                  tmp_path / "new", on_progress=on_progress, cancel=cancel, log=lambda s: None)
    assert not (tmp_path / "new").exists()
    state = json.loads((tmp_path / "new.ckpt" / "ldm_s" / "state.json").read_text())
    assert state["step"] == 3


def test_new_classes_and_empty_tiles(start_dir, tmp_path):
    img, _ = _frames(1, size=600)
    ids = np.zeros((600, 600), np.uint16)
    ids[20:60, 20:60] = 7  # one cell in one corner: most tiles hold nothing
    pairs = check_pairs(img, [ids], ["big"], ("background", "cell"), "instances")
    r = fine_tune(start_dir, pairs, FineTuneConfig(minutes=None, steps=2, holdout=0, batch_size=2, crop=64,
                                                   device="cpu"),
                  tmp_path / "cells", class_names=("background", "cell"), log=lambda s: None)
    assert any("hold no labelled object" in m for m in r.messages)
    assert load_bundle(tmp_path / "cells").card.class_names == ("background", "cell")


def test_folder_pairs_and_out_folder_checks(start_dir, tmp_path):
    import tifffile

    img, lab = _frames(2)
    for sub in ("images", "masks"):
        (tmp_path / "data" / sub).mkdir(parents=True)
    for i in range(2):
        tifffile.imwrite(tmp_path / "data" / "images" / f"f{i}.tif", img[i])
        tifffile.imwrite(tmp_path / "data" / "masks" / f"f{i}.tif", lab[i])
    pairs = pairs_from_folder(tmp_path / "data", NAMES)
    assert pairs.names == ["f0.tif", "f1.tif"]
    with pytest.raises(InputImageError, match="holds no image/mask pairs"):
        pairs_from_folder(tmp_path / "data" / "images", NAMES)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder or a model folder"):
        fine_tune(start_dir, pairs, FineTuneConfig(steps=1), tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_unet_fine_tune_is_scored_the_same_way(start_dir, tmp_path):
    img, lab = _frames(2)
    pairs = check_pairs(img, lab, ["a", "b"], NAMES)
    r = fine_tune(start_dir, pairs, FineTuneConfig(train="unet", minutes=None, steps=2, batch_size=2, crop=64,
                                                   device="cpu"), tmp_path / "unet", log=lambda s: None)
    assert r.kind == "baseline" and r.steps == 2 and r.after["frames"] == 2
    card = json.loads((tmp_path / "unet" / "unet_baseline.json").read_text())
    assert card["training"]["holdout"]["after"]["frames"] == 2


def test_three_frames_give_the_card_an_unlike_the_training_data_reference(start_dir, tmp_path):
    img, lab = _frames(3)
    pairs = check_pairs(img, lab, ["a", "b", "c"], NAMES)
    fine_tune(start_dir, pairs, FineTuneConfig(minutes=None, steps=1, batch_size=2, crop=64, device="cpu"),
              tmp_path / "new", log=lambda s: None)
    ood = load_bundle(tmp_path / "new").card.ood
    assert ood["source"] == "fine-tune frames (3)" and ood["threshold"] > ood["train_max"] > 0


def test_input_scale_kept_for_like_frames_full_size_for_unlike_ones(start_dir, tmp_path):
    from dataclasses import replace

    from napari_pgdiffseg.core.ood import frame_features, reference_from_features
    from napari_pgdiffseg.core.training.finetune import fine_tune_input_scale

    img, lab = _frames(3)
    start = load_bundle(start_dir)
    assert fine_tune_input_scale(start, img) == (1.0, "")  # a scale-1 model stays at 1
    half = replace(start.card, input_scale=0.5)
    start.card = half
    assert fine_tune_input_scale(start, img) == (0.5, "")  # no reference: nothing to tell, kept
    assert fine_tune_input_scale(start, img, 0.25) == (0.25, "input scale 0.25, as set")
    start.card = replace(half, ood=reference_from_features([frame_features(im, start) for im in img], "t").to_dict())
    assert fine_tune_input_scale(start, img) == (0.5, "")  # like its training frames: kept
    unlike = [100.0 + 50.0 * np.sign(np.sin(np.arange(96)[:, None] / 3.0)) * np.ones((96, 96), np.float32)
              for _ in range(3)]
    scale, note = fine_tune_input_scale(start, unlike)
    assert scale == 1.0 and "unlike the starting model's training images" in note and "0.5" in note
    # the fine-tune follows it and says so; the U-Net's card keeps the scale and segments at it
    pairs = check_pairs(unlike, lab, ["a", "b", "c"], NAMES)
    r = fine_tune(start, pairs, FineTuneConfig(minutes=None, steps=1, batch_size=2, crop=64, device="cpu"),
                  tmp_path / "new", log=lambda s: None)
    assert load_bundle(tmp_path / "new").card.input_scale == 1.0 and any("input scale 1" in m for m in r.messages)
    start.card = half
    r = fine_tune(start, pairs, FineTuneConfig(train="unet", minutes=None, steps=1, batch_size=2, crop=64,
                                               device="cpu"), tmp_path / "unet", log=lambda s: None)
    from napari_pgdiffseg.core.training import load_baseline, segment_baseline

    unet = load_baseline(tmp_path / "unet")
    assert unet.card.input_scale == 0.5
    out = segment_baseline(img[0][:90, :70], unet)
    assert out.shape == (90, 70) and out.dtype == np.uint8
    with pytest.raises(ConfigError, match="input_scale must be a number"):
        FineTuneConfig(input_scale=0)
