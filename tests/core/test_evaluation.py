import re
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import ttest_ind

from napari_pgdiffseg.core.errors import ConfigError
from napari_pgdiffseg.core.evaluation import (
    Method,
    MethodScores,
    cross_validate,
    evaluate,
    fold_groups,
    markdown_table,
    method_tables,
    p_values,
    write_csv,
)
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_dataset

MEAN_SD = r"\d\.\d{3} \(\d\.\d{3}\)"


def test_method_tables_rows_and_nfe():
    t = method_tables(100, 200, baseline=lambda img: img, nfe_sampling=(200, 50, 10), nfe_inversion=(100, 10))
    assert [(m.name, m.nfe) for m in t["table2"]] == [
        ("U-Net (ResNet-18)", 1), ("Random x1", 200), ("Random x3", 600), ("Random x5", 1000),
        ("Prior x1", 300), ("Prior x3", 700)]
    assert [(m.name, m.nfe) for m in t["table3"]] == [
        ("Random", 200), ("Forward Diff. t=0", 200), ("Forward Diff. t=300", 200), ("Forward Diff. t=600", 200),
        ("LDM-P inversion 50", 250), ("LDM-P inversion 100", 300), ("LDM-P inversion 200", 400)]
    assert [m.config.forward_t for m in t["table3"][1:4]] == [0, 300, 600]
    v = t["variants"]
    assert [(m.config.renormalise, m.config.mix) for m in v] == [(False, 1.0), (True, 1.0), (False, 0.5)]
    assert [(m.name, m.nfe) for m in t["nfe"]] == [
        ("Prior 100+200", 300), ("Prior 50+50", 100), ("Prior 10+10", 20), ("Prior 100+10", 110),
        ("Random x1 200", 200), ("Random x1 50", 50), ("Random x1 10", 10), ("Forward t=0, 10 steps", 10),
        ("Random x5 200", 1000)]  # the paper's 100+200 is the first row already
    fwd0 = t["nfe"][-2].config
    assert (fwd0.strategy, fwd0.forward_t, fwd0.sampling_steps) == ("forward", 0, 10)
    few = method_tables(10, 10, nfe_sampling=(2, 1), nfe_inversion=(1,))["nfe"]
    assert [(m.name, m.nfe) for m in few] == [
        ("Prior 2+2", 4), ("Prior 1+1", 2), ("Random x1 2", 2), ("Random x1 1", 1), ("Forward t=0, 1 steps", 1),
        ("Random x5 10", 50), ("Prior 100+200 (paper)", 300)]


def test_method_needs_exactly_one_way_to_predict():
    with pytest.raises(ConfigError, match="exactly one"):
        Method("x")


def test_evaluate_runs_methods_and_formats_mean_sd(tiny_bundle, fast_config, tmp_path):
    imgs, masks = make_dataset(2, 11, SyntheticConfig(shape=(64, 64)))
    rows = {m.name: m.config for m in method_tables(5, 5, base=fast_config)["table2"]}
    methods = {k: rows[k] for k in ("Prior x1", "Random x5")}
    scores = evaluate(tiny_bundle, imgs, masks, methods)
    assert [s.name for s in scores] == ["Prior x1", "Random x5"]
    assert [s.nfe for s in scores] == [10, 25]
    assert all(len(s.miou) == 2 and all(0 <= v <= 1 for v in s.miou) for s in scores)
    table = markdown_table(scores, "t")
    rows = [ln for ln in table.splitlines() if ln.startswith("| Prior") or ln.startswith("| Random")]
    assert len(rows) == 2
    assert re.search(rf"\| Prior x1 \| 10 \| {MEAN_SD} \| {MEAN_SD} \|", rows[0])
    assert rows[0].endswith("| - |")  # the reference has no p-value against itself
    assert "mean (SD) over frames;" in table
    path = write_csv(tmp_path / "t.csv", scores, {"bundle": "tiny"})
    header = path.read_text().splitlines()[0].split(",")
    assert header[:6] == ["bundle", "method", "nfe", "frames", "units", "n_units"]
    assert header[-2:] == ["p_miou", "p_f1"]


def test_same_setting_runs_once_and_baseline_counts_one_nfe(tiny_bundle, fast_config):
    imgs, masks = make_dataset(2, 12, SyntheticConfig(shape=(48, 48)))
    calls = []

    def predict(img):
        calls.append(img.shape)
        return np.zeros(img.shape, np.uint8)

    rand = replace(fast_config, strategy="random")
    scores = evaluate(tiny_bundle, imgs, masks, [Method("U-Net", predict=predict), Method("Random x1", rand),
                                                 Method("Random", rand)])
    assert len(calls) == 2  # one call per frame
    assert scores[0].nfe == 1 and np.isnan(scores[0].noise_kld).all()
    assert scores[1].miou == scores[2].miou and scores[2].name == "Random"
    # All background predicted: IoU(background) = its truth fraction, IoU 0 for every other
    # class present in the truth, absent classes ignored.
    expected = [np.mean([(m == 0).mean()] + [0.0] * (len(np.unique(m)) - 1)) for m in masks]
    np.testing.assert_allclose(scores[0].miou, expected)


def test_mean_sd_by_hand():
    s = MethodScores("x", 1, miou=[0.5, 0.7], f1=[0.6, 0.6], noise_ssim=[np.nan, np.nan], noise_kld=[0, 0],
                     seconds_per_tile=[1, 3])
    r = s.row()
    assert r["miou"] == 0.6 and abs(r["miou_sd"] - np.std([0.5, 0.7], ddof=1)) < 1e-12
    assert np.isnan(r["noise_ssim"]) and "n/a" in markdown_table([s])


def test_statistics_over_folds_by_hand():
    s = MethodScores("x", 1, miou=[0.2, 0.4, 0.9, 0.7], f1=[0.0] * 4, noise_ssim=[0.0] * 4, noise_kld=[0.0] * 4,
                     seconds_per_tile=[1.0] * 4, groups=[0, 0, 1, 1])
    np.testing.assert_allclose(s.units("miou"), [0.3, 0.8])
    r = s.row()
    assert r["units"] == "folds" and r["n_units"] == 2
    assert r["miou"] == pytest.approx(0.55) and r["miou_sd"] == pytest.approx(np.std([0.3, 0.8], ddof=1))
    assert "mean (SD) over folds;" in markdown_table([s])


def test_p_values_are_scipy_independent_t_tests():
    a = MethodScores("Prior x1", 100, miou=[0.8, 0.82, 0.79, 0.85])
    b = MethodScores("Random x1", 50, miou=[0.6, 0.7, 0.65, 0.62])
    c = MethodScores("Const", 50, miou=[0.5])
    p = p_values([a, b, c])
    assert np.isnan(p["Prior x1"]) and np.isnan(p["Const"])  # itself; too few values
    assert p["Random x1"] == pytest.approx(ttest_ind(a.miou, b.miou).pvalue)
    assert p["Random x1"] < 0.01


def test_fold_groups_cover_every_frame_once():
    g = fold_groups(10, 3, seed=0)
    assert sorted(np.bincount(g)) == [3, 3, 4]
    assert (fold_groups(5, 1) == 0).all()


def test_cross_validate_two_folds_two_methods(tiny_bundle, fast_config):
    imgs, masks = make_dataset(4, 13, SyntheticConfig(shape=(48, 48)))
    methods = [Method("Prior x1", replace(fast_config, strategy="prior")),
               Method("Random x1", replace(fast_config, strategy="random"))]
    trained = []

    def train_fold(train_images, train_masks, fold):
        trained.append((fold, len(train_images), len(train_masks)))
        return tiny_bundle, None

    scores = cross_validate(imgs, masks, lambda baseline: methods, folds=2, train_fold=train_fold, log=lambda s: None)
    assert trained == [(0, 2, 2), (1, 2, 2)]
    assert [s.name for s in scores] == ["Prior x1", "Random x1"]
    assert [s.nfe for s in scores] == [10, 5]
    for s in scores:
        assert sorted(s.groups) == [0, 0, 1, 1] and len(s.miou) == 4
        assert s.row()["units"] == "folds"
    table = markdown_table(scores)
    assert len(re.findall(rf"\| (Prior|Random) x1 \| \d+ \| {MEAN_SD} \| {MEAN_SD} \|", table)) == 2
    with pytest.raises(ConfigError, match="at least 2 folds"):
        cross_validate(imgs, masks, lambda b: methods, folds=1, train_fold=train_fold)
