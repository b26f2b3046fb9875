import json

import numpy as np
import pytest

from napari_pgdiffseg import BundleError, create_bundle, load_bundle, save_bundle, segment


def test_save_load_round_trip_gives_identical_labels(tmp_path, fast_config, frame_300x200):
    b = create_bundle("tiny", seed=3)
    path = save_bundle(b, tmp_path / "bundle")
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert files == [
        "autoencoder/config.json", "autoencoder/diffusion_pytorch_model.safetensors",
        "ldm_p/config.json", "ldm_p/diffusion_pytorch_model.safetensors",
        "ldm_s/config.json", "ldm_s/diffusion_pytorch_model.safetensors",
        "pgdiffseg.json", "scheduler/scheduler_config.json",
    ]
    loaded = load_bundle(path)
    assert loaded.card == b.card
    r1 = segment(frame_300x200, b, fast_config)
    r2 = segment(frame_300x200, loaded, fast_config)
    assert np.array_equal(r1.labels, r2.labels)
    assert np.array_equal(r1.noise, r2.noise)


def test_save_refuses_to_overwrite_and_leaves_no_temp(tmp_path):
    b = create_bundle("tiny")
    save_bundle(b, tmp_path / "b")
    with pytest.raises(FileExistsError):
        save_bundle(b, tmp_path / "b")
    save_bundle(b, tmp_path / "b", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


@pytest.fixture
def saved(tmp_path):
    return save_bundle(create_bundle("tiny"), tmp_path / "bundle")


def test_missing_weight_file_is_named(saved):
    (saved / "ldm_p" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(BundleError, match="missing ldm_p/diffusion_pytorch_model.safetensors"):
        load_bundle(saved)


def test_truncated_weight_file_is_named(saved):
    f = saved / "ldm_s" / "diffusion_pytorch_model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"ldm_s/diffusion_pytorch_model\.safetensors is not a valid safetensors"):
        load_bundle(saved)


def test_pickle_weights_are_not_accepted(saved):
    f = saved / "autoencoder" / "diffusion_pytorch_model.safetensors"
    f.rename(f.with_name("diffusion_pytorch_model.bin"))
    with pytest.raises(BundleError, match="missing autoencoder/diffusion_pytorch_model.safetensors"):
        load_bundle(saved)


def test_corrupt_card_and_wrong_shapes_are_reported(saved, tmp_path):
    (saved / "pgdiffseg.json").write_text("{not json")
    with pytest.raises(BundleError, match="pgdiffseg.json cannot be read as JSON"):
        load_bundle(saved)
    # A 4-class card on 3-class networks: config shapes disagree.
    b = create_bundle("tiny")
    path = save_bundle(b, tmp_path / "b4")
    card = json.loads((path / "pgdiffseg.json").read_text())
    card["class_names"].append("injured")
    card["colors"].append([0, 0, 255, 255])
    (path / "pgdiffseg.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="ldm_s maps 6->3 channels, expected 7->4"):
        load_bundle(path)


def test_config_with_wrong_weight_shapes_is_reported(saved):
    cfg_file = saved / "ldm_p" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["block_out_channels"] = [16, 32]
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match="cannot load .*ldm_p"):
        load_bundle(saved)


def test_missing_folder(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")


def test_default_colours_follow_class_names_and_stay_colour_blind_safe():
    from napari_pgdiffseg.core.bundle import CLASS_COLORS, OKABE_ITO, default_colors

    live, dead = CLASS_COLORS["live"], CLASS_COLORS["dead"]
    assert default_colors(("background", "live", "dead")) == ((0, 0, 0, 0), live, dead)
    assert live[1] > max(live[0], live[2]) and min(dead[0], dead[2]) > dead[1]  # green, magenta
    # Unknown names take the palette in order; the first class is always transparent.
    assert default_colors(("bg", "nucleus", "mitosis")) == ((0, 0, 0, 0), OKABE_ITO[0], OKABE_ITO[1])
    assert default_colors(4) == ((0, 0, 0, 0),) + OKABE_ITO[:3]
    assert default_colors(("background", "dead", "live")) == ((0, 0, 0, 0), dead, live)  # by name, not position


@pytest.mark.parametrize("name", ["slim-viability", "synthetic-demo", "qpi-cells"])
def test_shipped_cards_use_the_class_colours(name):
    from napari_pgdiffseg.core.bundle import default_colors, load_model

    card = load_model(name).card
    assert card.colors == default_colors(card.class_names)
