"""Model files never go through pickle, and segmentation needs no network."""

import re
import socket
from pathlib import Path

import numpy as np
import pytest

import napari_pgdiffseg
from napari_pgdiffseg import SegmentConfig, segment
from napari_pgdiffseg.core.bundle import load_model
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_frame

PACKAGE = Path(napari_pgdiffseg.__file__).parent


def _calls(pattern: str):
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        for m in re.finditer(pattern, text):
            # the whole call, up to its closing parenthesis on the same or following lines
            yield path, text[m.start(): text.find(")", m.end()) + 1]


def test_no_unsafe_unpickling_in_the_package():
    unsafe = [f"{p.relative_to(PACKAGE)}: {call}" for p, call in _calls(r"\btorch\.load\(")
              if "weights_only=True" not in call]
    unsafe += [f"{p.relative_to(PACKAGE)}: {call}" for p, call in _calls(r"\bpickle\.loads?\(")]
    assert not unsafe, unsafe
    assert list(_calls(r"\btorch\.load\(")), "the scan found no torch.load at all: is it looking at the package?"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_shipped_bundle_loads_and_segments_with_sockets_blocked(no_network):
    with pytest.raises(OSError, match="offline test"):
        socket.create_connection(("example.org", 80))
    bundle = load_model("synthetic-demo")
    image, truth = make_frame(5, SyntheticConfig(shape=(96, 128)))
    r = segment(image, bundle, SegmentConfig(inversion_steps=2, sampling_steps=2, device="cpu"))
    assert r.labels.shape == (96, 128) and set(np.unique(r.labels)) <= {0, 1, 2}
    assert r.nfe == 4
