"""The U-Net baseline (Sec. 4.4.1): training lowers the Dice loss, save/load round trip,
segmentation of frames of any size, and clear errors for damaged folders.

Kept fast: tiny synthetic frames, 64 px tiles, resnet18, a handful of steps.
"""

import copy
import json

import numpy as np
import pytest
import torch

from napari_pgdiffseg.core.training.baseline import (
    CARD_FILE,
    WEIGHTS_FILE,
    BaselineConfig,
    build_unet,
    load_baseline,
    segment_baseline,
    train_baseline,
)
from napari_pgdiffseg.core.training import Augment, TileDataset
from napari_pgdiffseg.core.errors import BundleError, ConfigError
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_dataset

TILE = 64


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # On a shared 2-core machine, two torch threads spin-wait on each other whenever
    # another process holds a core: a RAdam step took 1.8 s with 2 threads, 0.04 s with 1.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def frames():
    # One 128 px frame holding all three classes: four 64 px tiles.
    return make_dataset(1, 4, SyntheticConfig(shape=(2 * TILE, 2 * TILE)))


@pytest.fixture(scope="module")
def trained(frames, tmp_path_factory):
    """A few steps on the frame's four tiles (batch 4, no augmentation: a fixed batch)."""
    imgs, masks = frames
    ds = TileDataset.from_arrays(imgs, masks, tile_size=TILE, require_masks=True)
    cfg = BaselineConfig(steps=8, batch_size=4, lr=3e-3, seed=0, device="cpu")
    out = tmp_path_factory.mktemp("baseline") / "unet"
    logs = []
    baseline, report = train_baseline(ds, cfg, out, log=logs.append)
    return ds, cfg, out, baseline, report, logs


def _dice_loss(net, ds):
    """Dice loss of `net` on all tiles of `ds`, BatchNorm on batch statistics, no side effects."""
    from monai.losses import DiceLoss

    x = torch.stack([ds[i]["image"] for i in range(len(ds))])
    y = torch.stack([ds[i]["mask"] for i in range(len(ds))])[:, None]
    net = copy.deepcopy(net).train()  # train mode: what the optimiser saw, without touching `net`
    with torch.no_grad():
        return float(DiceLoss(softmax=True, to_onehot_y=True, batch=True)(net(x), y))


def test_training_lowers_dice_loss_and_saves_the_folder(trained):
    ds, cfg, out, baseline, report, logs = trained
    torch.manual_seed(cfg.seed)  # train_baseline starts from exactly these weights
    before = _dice_loss(build_unet(cfg.backbone, 3), ds)
    after = _dice_loss(baseline.model, ds)
    assert after < before - 0.05, (before, after)
    assert report.steps == 8 and len(report.losses) == 8 and report.seconds > 0
    assert report.last_loss < report.first_loss
    assert any("Dice loss" in m for m in logs)
    card = json.loads((out / CARD_FILE).read_text())
    assert card["backbone"] == "resnet18" and card["n_classes"] == 3
    assert card["class_names"] == ["background", "live", "dead"]
    assert card["normalization"] == ds.normalization.to_dict() and card["tile_size"] == TILE
    assert card["training"]["config"]["steps"] == 8 and card["training"]["report"]["steps"] == 8
    assert card["training"]["machine"]["cpu_count"] >= 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["unet"]  # no temporary folder left


def test_save_load_gives_identical_predictions_and_any_frame_size(trained):
    _, _, out, baseline, _, _ = trained
    loaded = load_baseline(out)
    rng = np.random.default_rng(1)
    frame = make_dataset(1, 7, SyntheticConfig(shape=(300, 200)))[0][0]
    # Identical predictions on a 112x100 crop (4 tiles), the full frame once (24 tiles).
    np.testing.assert_array_equal(segment_baseline(frame[:112, :100], baseline),
                                  segment_baseline(frame[:112, :100], loaded))
    lab = segment_baseline(frame, loaded, overlap=8)
    assert lab.shape == (300, 200) and lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1, 2}
    small = rng.normal(size=(20, 20)).astype(np.float32)
    lab = segment_baseline(small, loaded, overlap=0, tile_batch=1)
    assert lab.shape == (20, 20) and lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1, 2}
    with pytest.raises(ConfigError, match="overlap"):
        segment_baseline(small, loaded, overlap=TILE)


def test_damaged_folders_name_the_file(trained, tmp_path):
    import shutil

    _, _, out, _, _, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    w = bad / WEIGHTS_FILE
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(BundleError, match=WEIGHTS_FILE) as e:
        load_baseline(bad)
    assert "truncated" in str(e.value) and "train_baseline" in str(e.value)
    w.unlink()
    with pytest.raises(BundleError, match=f"missing {WEIGHTS_FILE}"):
        load_baseline(bad)
    # Weights of another network (4 classes) beside a 3-class card: shapes are reported.
    shutil.copy(out / WEIGHTS_FILE, w)
    card = json.loads((bad / CARD_FILE).read_text())
    card["class_names"].append("extra")
    card["n_classes"] = 4
    (bad / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(BundleError, match="wrong shape"):
        load_baseline(bad)


def test_settings_are_checked(frames, tmp_path):
    with pytest.raises(ConfigError, match="backbone"):
        BaselineConfig(backbone="vgg16")
    with pytest.raises(ConfigError, match="crop"):
        BaselineConfig(crop=100)
    imgs, _ = frames
    unlabelled = TileDataset.from_arrays(imgs, None, tile_size=TILE, augment=Augment())
    with pytest.raises(ConfigError, match="mask"):
        train_baseline(unlabelled, BaselineConfig(steps=1, device="cpu"), tmp_path / "x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    _, masks = frames
    ds = TileDataset.from_arrays(imgs, masks, tile_size=TILE, require_masks=True)
    with pytest.raises(ConfigError, match="other files"):
        train_baseline(ds, BaselineConfig(steps=1, device="cpu"), tmp_path / "busy")
