"""Shared fixtures: tiny untrained bundles built in the test (no downloads, milliseconds a call)."""

import numpy as np
import pytest

from napari_pgdiffseg import SegmentConfig, create_bundle, save_bundle
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame


@pytest.fixture(scope="session")
def tiny_bundle():
    return create_bundle("tiny", seed=0)


@pytest.fixture
def fast_config():
    """Few steps so an end-to-end run on a small frame takes well under a second."""
    return SegmentConfig(inversion_steps=5, sampling_steps=5, noise_metrics=False, device="cpu")


@pytest.fixture
def frame_300x200():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:300, :200]
    cells = np.exp(-((yy - 100) ** 2 + (xx - 80) ** 2) / 800.0) + 0.7 * np.exp(-((yy - 220) ** 2 + (xx - 140) ** 2) / 300.0)
    return (cells + 0.05 * rng.normal(size=cells.shape)).astype(np.float32)


@pytest.fixture(scope="session")
def synthetic_frame():
    """A 256x256 synthetic phase frame and its truth labels."""
    return make_frame(3, SyntheticConfig(shape=(256, 256)))


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory):
    """The tiny bundle saved to disk (for the CLI and the widgets' model field)."""
    return save_bundle(create_bundle("tiny", seed=0), tmp_path_factory.mktemp("bundles") / "tiny")
