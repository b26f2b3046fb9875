import numpy as np
import pytest

from napari_pgdiffseg.core.errors import ConfigError, InputImageError
from napari_pgdiffseg.core.preprocess import Normalization, as_planes, check_frame, normalize


@pytest.mark.parametrize(
    "image,msg",
    [
        (np.zeros((64, 64, 3), np.uint8), "RGB"),
        (np.zeros((64, 64, 4), np.float32), "RGB"),
        (np.zeros((2, 3, 64, 64)), "2D"),
        (np.zeros(64), "2D"),
        (np.zeros((0, 64)), "empty"),
        (np.ones((10, 64)), "at least 16x16"),
        (np.full((32, 32), 5.0), "constant"),
        (np.ones((32, 32), bool), "boolean"),
        (np.ones((32, 32), np.complex64), "complex"),
        (np.array([["a"] * 32] * 32), "dtype"),
    ],
)
def test_bad_frames_are_refused_with_clear_messages(image, msg):
    with pytest.raises(InputImageError, match=msg):
        check_frame(image)


def test_nan_and_inf_are_counted():
    img = np.random.default_rng(0).normal(size=(32, 32))
    img[0, 0], img[1, 1] = np.nan, np.inf
    with pytest.raises(InputImageError, match="2 NaN/inf"):
        check_frame(img)


def test_integer_and_float_frames_become_float32():
    assert check_frame(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)).dtype == np.float32
    big = np.array([[np.iinfo(np.int64).min, np.iinfo(np.int64).max]] * 16 * 8).reshape(16, 16)
    assert np.isfinite(check_frame(big)).all()


def test_percentile_normalisation_maps_percentiles_to_pm1():
    img = np.linspace(0, 100, 101 * 101, dtype=np.float32).reshape(101, 101)
    out = normalize(img, Normalization(low=0, high=100))
    assert out.min() == pytest.approx(-1) and out.max() == pytest.approx(1)
    out = normalize(img, Normalization(low=10, high=90, clip=True))
    assert out.min() == -1 and out.max() == 1
    assert out.dtype == np.float32


def test_range_normalisation_and_validation():
    img = np.array([[0.0, 255.0]] * 16 * 8, np.float32).reshape(16, 16)
    out = normalize(img, Normalization(method="range", in_range=(0, 255)))
    assert out.min() == -1 and out.max() == 1
    with pytest.raises(ConfigError, match="in_range"):
        Normalization(method="range")
    with pytest.raises(ConfigError, match="percentiles"):
        Normalization(low=50, high=10)
    n = Normalization(method="range", in_range=(0, 3.5))
    assert Normalization.from_dict(n.to_dict()) == n


def test_as_planes():
    planes, stack = as_planes(np.zeros((5, 32, 32)))
    assert planes.shape == (5, 32, 32) and stack
    planes, stack = as_planes(np.zeros((32, 32)))
    assert planes.shape == (1, 32, 32) and not stack
    with pytest.raises(InputImageError, match="RGB"):
        as_planes(np.zeros((32, 32, 3)))
    with pytest.raises(InputImageError, match="stack of planes"):
        as_planes(np.zeros((2, 2, 32, 32)))


def test_background_normalization_puts_the_background_at_its_value():
    from napari_pgdiffseg.core.preprocess import background_level

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:200, :300]
    for offset, halo in ((10.0, 0.0), (67.0, -40.0)):  # a clean frame, and one with a dark halo ring
        img = offset + 0.5 * rng.normal(size=(200, 300))
        r = np.hypot(yy - 100, xx - 150)
        img[r < 30] += 50.0
        img[(r >= 30) & (r < 36)] += halo
        assert abs(background_level(img) - offset) < 0.5
        out = normalize(check_frame(img), Normalization(method="background"))
        assert abs(float(np.median(out[r > 60])) + 0.95) < 0.02
        assert abs(float(np.percentile(out, 99.8)) - 1.0) < 1e-4
    n = Normalization(method="background", background_value=-0.5)
    assert Normalization.from_dict(n.to_dict()) == n
    with pytest.raises(ConfigError, match="background_value must be in"):
        Normalization(method="background", background_value=1.5)
    with pytest.raises(ConfigError, match="'percentile', 'range', 'background'"):
        Normalization(method="mode")
