"""Training: frames and folds, tiles and augmentation, the shared loop, the diffusion stages
and the U-Net baseline.

    frames     reading frame/mask folders, label maps, k-fold splits by frame
    dataset    TileDataset (normalised, tiled frames) and Augment
    loop       shuffled tile batches, aligned random crops, machine info, TrainControl
    finetune   fine-tuning on the user's own pairs with a hold-out check (Train widget, CLI)
    diffusion  the three stages (autoencoder, LDM-P, LDM-S), checkpoints, train_bundle
    baseline   the paper's deterministic U-Net baseline (train, save, load, segment)

The names below are the package's training API; modules inside the package import from
the submodule that owns a name.
"""

from .baseline import BACKBONES, BaselineConfig, load_baseline, save_baseline, segment_baseline, train_baseline
from .dataset import Augment, TileDataset
from .diffusion import (
    MIXED_PRECISION,
    PREDICTION_TYPES,
    STAGES,
    StageConfig,
    StageReport,
    TrainConfig,
    build_training_data,
    latent_scaling_factor,
    process_state,
    summarize_reports,
    train_bundle,
    with_classes,
)
from .frames import (
    INSTANCES_MAP,
    LABEL_MAP_NAMES,
    LABEL_MAPS,
    MASK_SUFFIXES,
    Frame,
    FrameSet,
    find_frames,
    kfold_split,
    map_labels,
    mask_instances,
    parse_label_map,
    read_frames,
    read_mask,
    split_frames,
)
from .finetune import (
    LABELS_ARE,
    TRAIN_CHOICES,
    FineTuneConfig,
    FineTuneProgress,
    FineTuneResult,
    check_pairs,
    fine_tune,
    holdout_split,
    merge_pairs,
    pairs_from_folder,
)
from .loop import StepReport, TrainControl, machine_info, random_crop, tile_batches

__all__ = [
    "Augment", "BACKBONES", "FineTuneConfig", "FineTuneProgress", "FineTuneResult", "LABELS_ARE", "StepReport",
    "TRAIN_CHOICES", "TrainControl", "check_pairs", "fine_tune", "holdout_split", "merge_pairs", "pairs_from_folder", "BaselineConfig", "Frame", "FrameSet", "INSTANCES_MAP", "LABEL_MAPS", "LABEL_MAP_NAMES",
    "MASK_SUFFIXES", "MIXED_PRECISION", "PREDICTION_TYPES", "STAGES", "StageConfig", "StageReport",
    "TileDataset", "TrainConfig", "build_training_data", "find_frames", "kfold_split", "latent_scaling_factor",
    "load_baseline", "machine_info", "map_labels", "mask_instances", "parse_label_map", "process_state",
    "random_crop", "read_frames", "read_mask", "save_baseline", "segment_baseline", "split_frames",
    "summarize_reports", "tile_batches", "train_baseline", "train_bundle", "with_classes",
]
