"""The checkpoint a classification run keeps (<run_dir>/checkpoint.pt, overwritten atomically at
the end of every epoch) as one typed record: classification.train writes it and resumes from it,
detection's backbone loader (detection.backbone.read_classification_checkpoint) reads it. A
finished run's checkpoint holds the last epoch's weights, the model its final line measures."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class RunCheckpoint:
    model: dict                  # the unwrapped model's state_dict
    config: dict                 # the run's resolved config (core.config.to_dict)
    num_classes: int | None = None
    epoch: int | None = None     # the last finished epoch
    optimizer: dict = field(default_factory=dict)
    method: Any = None           # the training method's state (its bank, snapshot, ...)
    wall_s: float = 0.0          # training seconds up to this epoch, over every invocation
    log: list | None = None      # the run log's records so far (lines a damaged log.jsonl lost come back)

    def to_dict(self) -> dict:
        """The mapping torch.save writes (core.checkpoint.save_checkpoint)."""
        return {"model": self.model, "optimizer": self.optimizer, "method": self.method,
                "num_classes": self.num_classes, "epoch": self.epoch, "wall_s": self.wall_s,
                "config": self.config, "log": self.log}

    @classmethod
    def from_dict(cls, obj: Mapping) -> "RunCheckpoint":
        """The record of a loaded checkpoint; ValueError when `obj` holds no model state dict. Keys
        a checkpoint from elsewhere lacks take their defaults; a "bank" entry (where older
        checkpoints keep Self-KD's bank) is the method's state."""
        if not isinstance(obj, Mapping) or not isinstance(obj.get("model"), Mapping):
            raise ValueError("not a classification checkpoint ({'model': state_dict, ...})")
        return cls(model=dict(obj["model"]), config=dict(obj.get("config") or {}),
                   num_classes=obj.get("num_classes"), epoch=obj.get("epoch"),
                   optimizer=obj.get("optimizer") or {},
                   method=obj["method"] if "method" in obj else obj.get("bank"),
                   wall_s=obj.get("wall_s", 0.0), log=obj.get("log"))

    @property
    def model_name(self) -> str | None:
        return self.config.get("model")

    @property
    def model_kwargs(self) -> dict:
        return dict(self.config.get("model_kwargs") or {})

    @property
    def dataset(self) -> str | None:
        return (self.config.get("data") or {}).get("name")

    @property
    def epochs(self) -> int | None:
        return self.config.get("epochs")
