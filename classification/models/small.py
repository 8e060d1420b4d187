"""A small CNN for 8x8 digits (the offline demo) and other tiny inputs."""
import torch.nn as nn

from . import register


@register("small_cnn")
def small_cnn(num_classes: int, width: int = 32, in_channels: int = 3) -> nn.Module:
    """conv-bn-relu x2, pool, conv-bn-relu x2, global pool, linear; ~30k params at width 32."""
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(
        *block(in_channels, width), *block(width, width), nn.MaxPool2d(2),
        *block(width, 2 * width), *block(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )
