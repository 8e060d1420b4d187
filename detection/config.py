"""The config of a detection run (typed dataclasses: defaults <- YAML <- overrides) and every check
on it that can fail before anything is written; the run folder it names."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

from core.checkpoint import max_seed
from core.cli import did_you_mean
from core.config import ConfigError
from core.methods import ALIASES, RENAMED_KEYS as METHOD_RENAMED_KEYS, method_names
from core.dist import check_device
from core.run import check_out_dir, run_dir_for

from .voc import VOC_CLASSES, parse_splits

BACKBONE_METHODS = method_names("detection")  # how the backbone was pre-trained (Table 3 rows)
FLIP_MODES = ("random", "copy")  # data.flip


@dataclass
class DataConfig:
    name: str = "voc07+12"  # the label reports group runs by
    root: str = "data/VOCdevkit"  # a VOCdevkit folder (or the folder holding one)
    train: str = "2007:trainval+2012:trainval"  # year:split lists, concatenated (Sec. 3.3)
    test: str = "2007:test"
    classes: List[str] = field(default_factory=lambda: list(VOC_CLASSES))
    # Horizontal flips in training. random: each image flipped with probability flip_prob, drawn
    # per (seed, epoch, image), an epoch is one pass over the images. copy: each image once as is
    # and once mirrored per epoch, shuffled (voc.FlippedCopies; py-faster-rcnn's and
    # faster-rcnn.pytorch's TRAIN.USE_FLIPPED), an epoch twice as long: 33,102 iterations on
    # VOC07+12 at batch 1 instead of 16,551; flip_prob is then unused.
    flip: str = "random"
    flip_prob: float = 0.5
    train_subset: int = 0  # >0: the first n training images (smoke runs, tests)
    test_subset: int = 0
    num_workers: int = 2


@dataclass
class ModelConfig:
    # A checkpoint written by classification/ (runs/table2/<row>_<method>_s0/checkpoint.pt for
    # the paper's ImageNet ResNet-152). Empty: `backbone` built untrained (learnability checks).
    backbone_checkpoint: str = ""
    backbone: str = ""  # model name; default: the one the checkpoint's config names
    backbone_classes: int = 0  # the class count the checkpoint's head must have; 0: as it records
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    min_size: int = 600  # shorter image side (Faster R-CNN / py-faster-rcnn)
    max_size: int = 1000
    anchor_sizes: List[int] = field(default_factory=lambda: [128, 256, 512])
    trainable_stages: int = 3  # ResNet stages fine-tuned (stem and stage 1 frozen, as py-faster-rcnn)
    frozen_bn: bool = True  # BatchNorm frozen: batch 1 (the paper) has no batch statistics
    # RoIAlign on the trunk's stride-16 map: output side and samples per bin (0: adaptive, as
    # torchvision.ops.roi_align). 14 / 2: torchvision's and detectron2's C4 (the last stage halves
    # it to 7x7); 7 / 0: faster-rcnn.pytorch's ResNet setting (cfgs/res101.yml POOLING_MODE align,
    # POOLING_SIZE 7; its ROIAlign's sampling_ratio 0), the last stage then sees 7x7 -> 4x4.
    roi_output_size: int = 14
    roi_sampling_ratio: int = 2


@dataclass
class OptimConfig:
    # Appendix C: batch 1, lr 1e-3, x0.1 after epoch 5 of 10. Momentum 0.9 and weight decay 1e-4
    # (the paper gives none; torchvision's detection reference recipe).
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # Biases: with bias_decay false they get no weight decay (faster-rcnn.pytorch's
    # TRAIN.BIAS_DECAY = False; py-faster-rcnn's decay_mult 0), and their lr is lr x bias_lr_mult
    # (faster-rcnn.pytorch's DOUBLE_BIAS: 2 by default, 1 in its ResNet cfgs/res101.yml;
    # py-faster-rcnn's lr_mult 2). BatchNorm's affine terms are buffers under frozen_bn.
    bias_decay: bool = True
    bias_lr_mult: float = 1.0
    milestones: List[int] = field(default_factory=lambda: [5])  # lr x0.1 from epoch 6 on
    gamma: float = 0.1
    batch_size: int = 1


@dataclass
class MethodSection:
    # the backbone's pre-training method (core.methods, those detection lists: Table 3's rows);
    # spelled method.name as in classification and translation
    name: str = "baseline"


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: MethodSection = field(default_factory=MethodSection)
    epochs: int = 10
    eval_every: int = 0  # >0: VOC07 mAP every n epochs in the epoch lines (learning curves)
    use_07_metric: bool = True  # VOC2007 11-point AP (the paper's); false: area under the curve
    seed: int = 0
    device: str = "auto"
    out_dir: str = "runs"
    table: str = "table3"
    row: str = ""  # default: the backbone's model name
    run_id: str = ""  # default: <row>_<method>_s<seed>
    resume: bool = False
    resume_changed: str = "refuse"
    stop_after_epochs: int = 0
    progress: bool = True
    tensorboard: bool = False  # also mirror the epoch lines to <run_dir>/tensorboard/ (core.tensorboard)

    # earlier spellings -> keys now (not a field): the methods' table (core.methods) and detection's
    # own `method: <name>`, a plain string before the method became a section as in the other tasks
    RENAMED_KEYS = {**METHOD_RENAMED_KEYS, "method": "method.name"}


RENAMED_KEYS = TrainConfig.RENAMED_KEYS


def validate(cfg) -> None:
    """Every check that can fail on bad input, before anything is written."""
    if cfg.method.name not in BACKBONE_METHODS:
        raise ConfigError(f"unknown method {cfg.method.name!r}"
                          f"{did_you_mean(cfg.method.name, BACKBONE_METHODS, aliases=ALIASES)} "
                          f"(the backbone's pre-training); expected one of "
                          f"{', '.join(BACKBONE_METHODS)}")
    if cfg.epochs < 1 or cfg.optim.batch_size < 1 or cfg.optim.lr <= 0:
        raise ConfigError(f"epochs, optim.batch_size and optim.lr must be positive, got {cfg.epochs}, "
                          f"{cfg.optim.batch_size}, {cfg.optim.lr}")
    if not 0.0 <= cfg.data.flip_prob <= 1.0:
        raise ConfigError(f"data.flip_prob must be in [0, 1], got {cfg.data.flip_prob}")
    if cfg.data.flip not in FLIP_MODES:
        raise ConfigError(f"data.flip must be one of {', '.join(FLIP_MODES)}, got {cfg.data.flip!r}")
    for key in ("train", "test"):
        try:
            parse_splits(getattr(cfg.data, key))
        except ConfigError as e:
            raise ConfigError(f"data.{key}: {e}") from None
    if not cfg.data.classes:
        raise ConfigError("data.classes must name at least one class")
    if cfg.model.min_size < 1 or cfg.model.max_size < 1:
        raise ConfigError(f"model.min_size and model.max_size must be >= 1, got {cfg.model.min_size}, "
                          f"{cfg.model.max_size}")
    if not cfg.model.anchor_sizes or min(cfg.model.anchor_sizes) < 1:
        raise ConfigError(f"model.anchor_sizes must be a non-empty list of sizes >= 1, got "
                          f"{list(cfg.model.anchor_sizes)}")
    if cfg.model.roi_output_size < 1 or cfg.model.roi_sampling_ratio < 0:
        raise ConfigError(f"model.roi_output_size must be >= 1 and model.roi_sampling_ratio >= 0, got "
                          f"{cfg.model.roi_output_size}, {cfg.model.roi_sampling_ratio}")
    if not cfg.optim.bias_lr_mult > 0:
        raise ConfigError(f"optim.bias_lr_mult must be positive, got {cfg.optim.bias_lr_mult}")
    if cfg.data.num_workers < 0:
        raise ConfigError(f"data.num_workers must be >= 0, got {cfg.data.num_workers}")
    top = max_seed(cfg.epochs)  # one process
    if not 0 <= cfg.seed <= top:
        raise ConfigError(f"seed must be in [0, {top}], got {cfg.seed}")
    if not cfg.model.backbone_checkpoint and not cfg.model.backbone:
        raise ConfigError("set model.backbone_checkpoint (a classification/ checkpoint) or model.backbone "
                          "(an untrained backbone, for checks only)")
    if cfg.model.backbone:  # the name classification/ would refuse, refused the same way
        from classification.models import check_model_kwargs, check_model_name
        try:
            check_model_name(cfg.model.backbone)
            check_model_kwargs(cfg.model.backbone, dict(cfg.model.model_kwargs))
        except ValueError as e:
            raise ConfigError(f"model.backbone: {e}") from None
    if cfg.model.backbone_checkpoint and not Path(cfg.model.backbone_checkpoint).is_file():
        raise ConfigError(f"backbone checkpoint not found: {cfg.model.backbone_checkpoint} (train it with "
                          f"classification/, e.g. make train-table2)")
    if not Path(cfg.data.root).exists():
        raise ConfigError(f"VOC data not found: {cfg.data.root} (set data.root to a VOCdevkit folder)")
    try:
        check_device(cfg.device)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    run_dir_of(cfg)
    check_out_dir(cfg.out_dir)


def row_of(cfg) -> str:
    """The table row: `row`, else the backbone's name, else its checkpoint's run folder."""
    return cfg.row or (cfg.model.backbone or Path(cfg.model.backbone_checkpoint).parent.name).replace("/", "_")


def run_dir_of(cfg) -> Path:
    return run_dir_for(cfg.out_dir, cfg.table, cfg.run_id or f"{row_of(cfg)}_{cfg.method.name}_s{cfg.seed}")
