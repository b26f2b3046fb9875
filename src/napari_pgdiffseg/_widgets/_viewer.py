"""Helpers that touch the viewer's layer list: following its changes, listing layers of a
kind for a magicgui choice, and replacing a widget's earlier output layers.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._jobs import qt_alive

LAYER_EVENTS = ("inserted", "removed", "reordered", "renamed")


def follow_layers(viewer, owner, callback: Callable[..., None]) -> None:
    """Call `callback` when the viewer's layer list changes, while `owner` (a QWidget) exists.

    Not tied to `owner.destroyed`: Python slots on `destroyed` of a dock widget deleted
    after its viewer was closed crash PyQt5 (seen with napari 0.9.2).
    """
    method, owner_ref = weakref.WeakMethod(callback), weakref.ref(owner)

    def on_change(*_):
        cb, widget = method(), owner_ref()
        if cb is not None and widget is not None and qt_alive(widget):
            cb()

    for name in LAYER_EVENTS:
        getattr(viewer.layers.events, name).connect(on_change)


def follow_selection(viewer, owner, callback: Callable[..., None]) -> None:
    """Call `callback` when the viewer's active layer changes, while `owner` exists."""
    method, owner_ref = weakref.WeakMethod(callback), weakref.ref(owner)

    def on_change(*_):
        cb, widget = method(), owner_ref()
        if cb is not None and widget is not None and qt_alive(widget):
            cb()

    viewer.layers.selection.events.active.connect(on_change)


def layer_choices(viewer, kinds: Iterable[type]) -> Callable[[Any], list]:
    """A magicgui `choices` callable listing the viewer's layers of the given types."""
    kinds = tuple(kinds)

    def choices(_widget=None):
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kinds)]

    return choices


FINGERPRINT_KEY = "pgdiffseg_fingerprint"  # metadata: name + data digest of an output layer as added


def fingerprint(layer) -> str:
    """Digest of a layer's name and data (a multiscale layer: its levels).

    A layer whose fingerprint still equals the one stored when the plugin added it is
    exactly as the plugin made it: not painted, filled, erased, renamed or given new data.
    """
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    h.update(layer.name.encode())
    levels = layer.data if getattr(layer, "multiscale", False) else [layer.data]
    for level in levels:
        arr = np.ascontiguousarray(np.asarray(level))
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def is_untouched(layer) -> bool:
    return layer.metadata.get(FINGERPRINT_KEY) == fingerprint(layer)


@dataclass
class Replaced:
    added: list  # the new layers
    kept: list  # earlier output layers kept because the user changed them (no longer tagged)


def replace_layers(viewer, new_layers: list, tag_key: str, tag_value) -> Replaced:
    """Add layers, first removing earlier layers whose metadata[tag_key] equals tag_value and
    that are still exactly as they were added (`is_untouched`).

    An earlier output layer the user painted into, renamed or otherwise changed is kept as
    it is and loses its tag, so no later run touches it; a new layer whose name is taken
    gets napari's next free name ("name [1]"). New layers take the list position of the
    first layer they replace, so a rerun keeps the user's layer order.
    """
    from napari.layers import Layer

    old = [ly for ly in viewer.layers if ly.metadata.get(tag_key) == tag_value]
    kept = [ly for ly in old if not is_untouched(ly)]
    removed = [ly for ly in old if ly not in kept]
    index = viewer.layers.index(removed[0]) if removed else None
    for ly in kept:
        ly.metadata.pop(tag_key, None)
        ly.metadata.pop(FINGERPRINT_KEY, None)
    for ly in removed:
        viewer.layers.remove(ly)
    added = []
    for data, kwargs, kind in new_layers:
        # Each layer its own metadata dict: layer tuples may share one, and the fingerprint is per layer.
        # The key is there from the start ("" until inserted), so widgets that follow the
        # selection can tell the plugin's outputs from the user's layers while they are added.
        kwargs = {**kwargs, "metadata": {**(kwargs.get("metadata") or {}), FINGERPRINT_KEY: ""}}
        layer = Layer.create(data, kwargs, kind)
        if index is None:
            viewer.add_layer(layer)
        else:
            viewer.layers.insert(index, layer)
            index += 1
        layer.metadata[FINGERPRINT_KEY] = fingerprint(layer)  # after insertion: napari may rename it
        added.append(layer)
    return Replaced(added, kept)


def kept_message(replaced: Replaced) -> str:
    """'' or one line naming the edited layers kept and the new layers' names."""
    if not replaced.kept:
        return ""
    kept = ", ".join(repr(ly.name) for ly in replaced.kept)
    new = ", ".join(repr(ly.name) for ly in replaced.added)
    return f"kept {kept}: changed since the plugin made it; the new result is in {new}"
