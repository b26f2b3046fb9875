"""Helpers that touch the viewer's layer list: following its changes, listing layers of a
kind for a magicgui choice, and replacing a widget's earlier output layers.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

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


def layer_choices(viewer, kinds: Iterable[type]) -> Callable[[Any], list]:
    """A magicgui `choices` callable listing the viewer's layers of the given types."""
    kinds = tuple(kinds)

    def choices(_widget=None):
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kinds)]

    return choices


def replace_layers(viewer, new_layers: list, tag_key: str, tag_value) -> list:
    """Add layers, first removing earlier layers whose metadata[tag_key] equals tag_value.

    New layers take the list position of the first layer they replace, so a rerun keeps
    the user's layer order. Returns the added layers.
    """
    from napari.layers import Layer

    old = [ly for ly in viewer.layers if ly.metadata.get(tag_key) == tag_value]
    index = viewer.layers.index(old[0]) if old else None
    for ly in old:
        viewer.layers.remove(ly)
    added = []
    for data, kwargs, kind in new_layers:
        layer = Layer.create(data, kwargs, kind)
        if index is None:
            viewer.add_layer(layer)
        else:
            viewer.layers.insert(index, layer)
            index += 1
        added.append(layer)
    return added
