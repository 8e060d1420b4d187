"""A small CNN for 8x8 digits (the offline demo) and other tiny inputs."""
import torch.nn as nn

from . import register


@register("small_cnn")
def small_cnn(num_classes: int, width: int = 32, in_channels: int = 3, norm: str = "bn") -> nn.Module:
    """conv-norm-relu x2, pool, conv-norm-relu x2, global pool, linear; ~30k params at width 32.

    norm="gn" (GroupNorm) makes every sample's output independent of its batch: the DDP test
    compares 1 and 2 processes with it, since BatchNorm statistics differ per rank on CPU."""
    if norm not in ("bn", "gn"):
        raise ValueError(f"norm must be 'bn' or 'gn', got {norm!r}")

    def block(cin, cout):
        layer = nn.BatchNorm2d(cout) if norm == "bn" else nn.GroupNorm(4, cout)
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), layer, nn.ReLU(inplace=True)]
    return nn.Sequential(
        *block(in_channels, width), *block(width, width), nn.MaxPool2d(2),
        *block(width, 2 * width), *block(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )
