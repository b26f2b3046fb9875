"""Overlapping tiles over frames of any size, and streaming blend-and-stitch of tile outputs.

Frames are reflect-padded to a multiple of the autoencoder factor (and up to one tile when
smaller), cut into tiles whose origins are multiples of that factor, and tile outputs
are blended with a linear ramp over the overlaps. `Stitcher` accumulates tile outputs in
a buffer one tile high and hands finished row bands to a sink as soon as no later tile
can touch them, so memory is bounded by the tile size, not the frame height.

(Written here rather than taken from a library: the candidates we know either keep whole
frames in memory or do not blend class scores; the logic is ~150 lines and fully tested.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis of a (padded) length >= tile; the last is flush at the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


@dataclass(frozen=True)
class TileGrid:
    """Tile layout over an (height, width) frame.

    `padded_shape` is the reflect-padded frame that the tiles cover: each side rounded up
    to a multiple of `multiple` and at least one tile. Tile origins are multiples of
    `multiple` so that outputs at 1/`multiple` resolution (latents) stitch exactly too.
    """

    height: int
    width: int
    tile: int = 256
    overlap: int = 32
    multiple: int = 4

    def __post_init__(self):
        if self.tile <= 0 or self.tile % self.multiple:
            raise ConfigError(f"tile size must be a positive multiple of {self.multiple}, got {self.tile}")
        if not 0 <= self.overlap < self.tile or self.overlap % self.multiple:
            raise ConfigError(
                f"tile overlap must be a multiple of {self.multiple} in [0, tile size), got {self.overlap}"
            )
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"frame must be non-empty, got {self.height}x{self.width}")

    @property
    def padded_shape(self) -> tuple[int, int]:
        return (
            max(self.tile, _round_up(self.height, self.multiple)),
            max(self.tile, _round_up(self.width, self.multiple)),
        )

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def rows(self) -> list[int]:
        return tile_origins(self.padded_shape[0], self.tile, self.stride)

    @property
    def cols(self) -> list[int]:
        return tile_origins(self.padded_shape[1], self.tile, self.stride)

    def origins(self) -> list[tuple[int, int]]:
        """Tile origins (y, x) in row-major order (the order `Stitcher` needs)."""
        return [(y, x) for y in self.rows for x in self.cols]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def pad(self, frame: np.ndarray) -> np.ndarray:
        """Reflect-pad a (h, w) frame to `padded_shape` (bottom and right only)."""
        ph, pw = self.padded_shape
        if frame.shape != (self.height, self.width):
            raise ConfigError(f"frame shape {frame.shape} does not match the grid {self.height}x{self.width}")
        if (ph, pw) == frame.shape:
            return frame
        # 'symmetric' reflection repeats as often as needed when the pad exceeds the frame.
        return np.pad(frame, ((0, ph - self.height), (0, pw - self.width)), mode="symmetric")

    def iter_tiles(self, padded: np.ndarray) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
        """Yield ``((y, x), tile)`` views over a padded frame in row-major order."""
        t = self.tile
        for y, x in self.origins():
            yield (y, x), padded[..., y : y + t, x : x + t]

    def scaled(self, factor: int) -> "TileGrid":
        """The same layout at 1/`factor` resolution (e.g. latents, factor 4)."""
        if self.tile % factor or self.overlap % factor or self.multiple % factor:
            raise ConfigError(f"cannot scale a grid with tile {self.tile} by 1/{factor}")
        # Cropped at ceil(size / factor); the padded size and the origins scale exactly
        # because both are multiples of `multiple`.
        return TileGrid(
            -(-self.height // factor),
            -(-self.width // factor),
            self.tile // factor,
            self.overlap // factor,
            self.multiple // factor,
        )


def blend_weights(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile) float32 weights: 1 in the core, a linear ramp over `overlap` at each side.

    Weights never reach 0, so the frame's outer border (covered by one tile only) keeps a
    defined value after normalisation.
    """
    i = np.arange(tile, dtype=np.float64)
    edge = np.minimum(i + 0.5, tile - i - 0.5)
    ramp = np.clip(edge / max(overlap, 1), 1.0 / (2 * max(overlap, 1)), 1.0)
    return np.outer(ramp, ramp).astype(np.float32)


Sink = Callable[[int, int, np.ndarray], None]


class Stitcher:
    """Blend (C, tile, tile) tile outputs into a (C, height, width) frame, streaming rows.

    Tiles must be added in the grid's row-major order. Whenever a tile starts a new tile
    row, every frame row above it is final: it is normalised by the summed weights, cropped
    to the frame and passed to ``sink(y_start, y_stop, block)`` with block shape
    (C, y_stop - y_start, width). `finish()` flushes the rest. Accumulation is float32.
    """

    def __init__(self, grid: TileGrid, channels: int, sink: Sink):
        self.grid = grid
        self.channels = channels
        self.sink = sink
        ph, pw = grid.padded_shape
        t = grid.tile
        self._w = blend_weights(t, grid.overlap)
        self._acc = np.zeros((channels, t, pw), np.float32)
        self._wsum = np.zeros((t, pw), np.float32)
        self._top = 0  # padded-frame row held at buffer row 0
        self._emitted = 0  # frame rows already handed to the sink
        self._last = (-1, -1)

    def add(self, origin: tuple[int, int], values: np.ndarray) -> None:
        y, x = origin
        t = self.grid.tile
        if values.shape != (self.channels, t, t):
            raise ValueError(f"tile output must be {(self.channels, t, t)}, got {values.shape}")
        if (y, x) <= self._last:
            raise ValueError(f"tiles must arrive in row-major order; got {(y, x)} after {self._last}")
        self._last = (y, x)
        if y > self._top:
            self._advance(y)
        r = y - self._top
        self._acc[:, r : r + t, x : x + t] += values * self._w
        self._wsum[r : r + t, x : x + t] += self._w

    def _advance(self, new_top: int) -> None:
        shift = new_top - self._top
        self._emit(self._top, new_top)
        t = self.grid.tile
        # Shift the unfinished rows to the top of the buffer and clear the rest.
        self._acc[:, : t - shift] = self._acc[:, shift:]
        self._acc[:, t - shift :] = 0
        self._wsum[: t - shift] = self._wsum[shift:]
        self._wsum[t - shift :] = 0
        self._top = new_top

    def _emit(self, start: int, stop: int) -> None:
        stop = min(stop, self.grid.height)
        if stop <= start:
            return
        a, b = start - self._top, stop - self._top
        if not self._wsum[a:b, : self.grid.width].all():
            raise RuntimeError(f"stitching rows {start}-{stop}: tiles are missing")
        block = self._acc[:, a:b, : self.grid.width] / self._wsum[a:b, : self.grid.width]
        self.sink(start, stop, block)
        self._emitted = stop

    def finish(self) -> None:
        self._emit(self._top, self._top + self.grid.tile)
        if self._emitted < self.grid.height:
            raise RuntimeError(
                f"stitching ended at row {self._emitted} of {self.grid.height}: tiles are missing"
            )


class ArraySink:
    """A sink that fills a preallocated (C, height, width) array."""

    def __init__(self, channels: int, height: int, width: int, dtype=np.float32):
        self.array = np.zeros((channels, height, width), dtype)

    def __call__(self, start: int, stop: int, block: np.ndarray) -> None:
        self.array[:, start:stop] = block
