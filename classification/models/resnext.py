"""ResNeXt-29 for CIFAR (Xie et al. 2017, "Aggregated Residual Transformations", Sec. 5.3), the
layout of prlz77/ResNeXt.pytorch used by the PS-KD code: 3x3 stem of 64, three stages of
(depth - 2) / 9 bottlenecks with outputs 256, 512, 1024, grouped 3x3 conv of width
cardinality x (base_width * stage), projection shortcuts where the shape changes."""
import torch.nn as nn
import torch.nn.functional as F

from . import register


class ResNeXtBottleneck(nn.Module):
    """conv1x1(D)-BN-ReLU-gconv3x3(D, groups=cardinality)-BN-ReLU-conv1x1(out)-BN, + shortcut."""

    def __init__(self, in_planes, out_planes, width, cardinality, stride=1):
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(in_planes, width, 1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, groups=cardinality, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, out_planes, 1, bias=False), nn.BatchNorm2d(out_planes),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_planes))

    def forward(self, x):
        return F.relu(self.branch(x) + self.shortcut(x))


class CifarResNeXt(nn.Module):
    def __init__(self, depth=29, cardinality=8, base_width=64, num_classes=100, in_channels=3):
        super().__init__()
        if (depth - 2) % 9:
            raise ValueError(f"ResNeXt depth must be 9n + 2, got {depth}")
        n = (depth - 2) // 9
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        blocks, in_planes = [], 64
        for stage, out_planes in enumerate([256, 512, 1024]):
            width = cardinality * base_width * 2 ** stage  # 8x64d: 512, 1024, 2048
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(ResNeXtBottleneck(in_planes, out_planes, width, cardinality, stride))
                in_planes = out_planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():  # He init as the official code: fan_out for convs, fan_in for fc
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
        nn.init.kaiming_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        out = self.blocks(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register("resnext29_8x64d")
def resnext29_8x64d(num_classes: int, **kw) -> nn.Module:
    return CifarResNeXt(29, 8, 64, num_classes, **kw)
