"""Score an LDM-S checkpoint on one fold's held-out HeLa frames (a development probe).

    python scripts/dev/score_checkpoint.py LDM_S_FOLDER [FOLD] [FLIPS]

The LDM-S (a diffusers folder, e.g. `<bundle>.ckpt/ldm_s/model` or `<bundle>/ldm_s`) is put
into slim-viability's bundle (its autoencoder, LDM-P and card are those every HeLa fold model
fine-tunes with), and scored with Prior x1 at 10 + 10 steps on the test frames of FOLD of the
3-fold split by frame (seed 0) that `pgdiffseg evaluate --folds 3` uses. Prints the per-frame
and mean foreground IoU and object F1. PROBE_INPUT_SCALE (env) overrides the card's input scale
for checkpoints trained at another scale.
"""

import dataclasses
import os
import sys

import numpy as np
from diffusers import UNet2DModel

from napari_pgdiffseg.core.bundle import load_model
from napari_pgdiffseg.core.config import SegmentConfig
from napari_pgdiffseg.core.evaluation import evaluate, fold_groups
from napari_pgdiffseg.core.training import read_frames

DATA = "../shared/data/qpi-live-dead"


def main(ldm_s: str, fold: int = 0, flips: int = 1) -> None:
    frames = read_frames([f"{DATA}/HeLa"], [f"{DATA}/HeLa-labels"], label_map="viability4", n_classes=3,
                         labelled_only=True)
    test = np.flatnonzero(fold_groups(len(frames.images), 3, 0) == fold)
    bundle = load_model("slim-viability")
    if os.environ.get("PROBE_INPUT_SCALE"):
        bundle.card = dataclasses.replace(bundle.card, input_scale=float(os.environ["PROBE_INPUT_SCALE"]))
    bundle.ldm_s = UNet2DModel.from_pretrained(ldm_s, use_safetensors=True, local_files_only=True).eval()
    config = SegmentConfig(strategy="prior", inversion_steps=10, sampling_steps=10, flips=flips)
    s = evaluate(bundle, [frames.images[i] for i in test], [frames.masks[i] for i in test], {"Prior x1": config},
                 instances=[frames.instances[i] for i in test])[0]
    names = [frames.names[i].rsplit("/", 1)[-1] for i in test]
    print(f"{ldm_s}: frames {' '.join(names)}; foreground IoU {np.round(s.fg_iou, 3).tolist()} "
          f"mean {np.mean(s.fg_iou):.3f}; object F1 {np.round(s.object_f1, 3).tolist()} mean {np.mean(s.object_f1):.3f}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:4]))
