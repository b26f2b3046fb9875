"""Fixtures of the napari widget tests: a tiny bundle on disk, fast settings, isolated settings file."""

from __future__ import annotations

import numpy as np
import pytest

from napari_pgdiffseg import SegmentConfig, create_bundle, save_bundle
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

PLUGIN = "napari-pgdiffseg"
SEGMENT = "Segment QPI (PG-DiffSeg)"
INSPECTOR = "Noise-quality inspector"
BATCH = "Batch segment folder"


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Widget settings go to a file of the test, never to the user's; cwd is the test's folder."""
    path = tmp_path / "settings" / "pgdiffseg.json"
    monkeypatch.setenv("NAPARI_PGDIFFSEG_SETTINGS", str(path))
    monkeypatch.chdir(tmp_path)  # nothing a widget writes can land in the repository
    return path


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory):
    return save_bundle(create_bundle("tiny", seed=0), tmp_path_factory.mktemp("bundles") / "tiny")


@pytest.fixture
def fast_config():
    return SegmentConfig(inversion_steps=5, sampling_steps=5, noise_metrics=False, device="cpu")


@pytest.fixture(scope="session")
def synthetic_frame():
    phase, truth = make_frame(3, SyntheticConfig(shape=(256, 256)))
    return phase, truth


@pytest.fixture
def errors(monkeypatch):
    """Messages passed to show_error by the widgets (instead of notifications)."""
    from napari_pgdiffseg._widgets import _common

    seen: list[str] = []
    monkeypatch.setattr(_common, "show_error", lambda msg: seen.append(str(msg)))
    return seen


def open_widget(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def wait_idle(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def fast_settings(widget, bundle_dir, config):
    widget.settings.set_bundle(bundle_dir)
    widget.settings.set_config(config)
    assert widget.settings.problem == "", widget.settings.problem


@pytest.fixture
def noisy_frame():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 64)).astype(np.float32)
