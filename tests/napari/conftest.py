"""Fixtures of the napari widget tests: an isolated settings file and captured error notifications."""

from __future__ import annotations

import pytest

# The widget modules loaded up front, so docking through the manifest returns the widget
# itself (`_dock.make_dock`); test_dock.py covers the lazy path.
import napari_pgdiffseg._widgets  # noqa: F401,E402


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Widget settings go to a file of the test, never to the user's; cwd is the test's folder."""
    path = tmp_path / "settings" / "pgdiffseg.json"
    monkeypatch.setenv("NAPARI_PGDIFFSEG_SETTINGS", str(path))
    monkeypatch.chdir(tmp_path)  # nothing a widget writes can land in the repository
    return path


@pytest.fixture
def errors(monkeypatch):
    """Messages passed to show_error by the widgets (instead of notifications)."""
    from napari_pgdiffseg._widgets import _jobs

    seen: list[str] = []
    monkeypatch.setattr(_jobs, "show_error", lambda msg: seen.append(str(msg)))
    return seen
