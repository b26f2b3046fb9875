"""The shipped bundle: loads offline, is small, and segments held-out synthetic frames well."""

import json

import numpy as np

from napari_pgdiffseg import SegmentConfig, segment
from napari_pgdiffseg.core.bundle import CARD_NAME, default_bundle_path, load_default_bundle
from napari_pgdiffseg.core.metrics import mean_iou
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_dataset


def test_shipped_bundle_is_small_and_documented():
    path = default_bundle_path()
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert size < 25e6
    card = json.loads((path / CARD_NAME).read_text())
    runs = card["provenance"]["training_runs"]
    assert {s["stage"] for r in runs for s in r["stages"]} == {"autoencoder", "ldm_p", "ldm_s"}
    assert all(s["seconds"] > 0 for r in runs for s in r["stages"])
    assert card["provenance"]["held_out"]


def test_shipped_bundle_segments_held_out_synthetic_frames():
    bundle = load_default_bundle()
    images, masks = make_dataset(4, 777, SyntheticConfig(shape=(256, 256), difficulty=0.5))
    cfg = SegmentConfig(inversion_steps=10, sampling_steps=10, noise_metrics=False, device="cpu")
    scores = [mean_iou(segment(img, bundle, cfg).labels, m, 3) for img, m in zip(images, masks)]
    assert np.mean(scores) > 0.85, scores
