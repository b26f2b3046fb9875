import re

import numpy as np

from napari_pgdiffseg.core.evaluation import MethodScores, evaluate, markdown_table, paper_methods, write_csv
from napari_pgdiffseg.core.synthetic import SyntheticConfig, make_dataset


def test_paper_methods_nfe():
    m = paper_methods(100, 200)
    assert {k: v.nfe_per_tile() for k, v in m.items()} == {
        "Prior x1": 300, "Random x1": 200, "Random x5": 1000, "Forward t=300": 200}


def test_evaluate_runs_methods_and_formats_mean_sd(tiny_bundle, fast_config, tmp_path):
    imgs, masks = make_dataset(2, 11, SyntheticConfig(shape=(64, 64)))
    methods = paper_methods(5, 5, base=fast_config)
    methods = {k: methods[k] for k in ("Prior x1", "Random x5")}
    scores = evaluate(tiny_bundle, imgs, masks, methods)
    assert [s.name for s in scores] == ["Prior x1", "Random x5"]
    assert [s.nfe for s in scores] == [10, 25]
    assert all(len(s.miou) == 2 and all(0 <= v <= 1 for v in s.miou) for s in scores)
    table = markdown_table(scores, "t")
    rows = [ln for ln in table.splitlines() if ln.startswith("| Prior") or ln.startswith("| Random")]
    assert len(rows) == 2
    assert re.search(r"\| Prior x1 \| 10 \| \d\.\d{3} \(\d\.\d{3}\) \|", rows[0])
    path = write_csv(tmp_path / "t.csv", scores, {"bundle": "tiny"})
    assert path.read_text().splitlines()[0].startswith("bundle,method,nfe,frames,miou,miou_sd")


def test_mean_sd_by_hand():
    s = MethodScores("x", 1, miou=[0.5, 0.7], f1=[0.6, 0.6], noise_ssim=[np.nan, np.nan], noise_kld=[0, 0],
                     seconds_per_tile=[1, 3])
    r = s.row()
    assert r["miou"] == 0.6 and abs(r["miou_sd"] - np.std([0.5, 0.7], ddof=1)) < 1e-12
    assert np.isnan(r["noise_ssim"]) and "n/a" in markdown_table([s])
