"""The small CIFAR ResNets of He et al. 2016 (Sec. 4.2): a 3x3 stem of 16 channels, three stages
of n basic blocks at 16 / 32 / 64 channels (x `width`), depth 6n + 2, global pool, linear.
Shortcuts are option A of the paper: identity, subsampled and zero-padded where the shape
changes (parameter-free), so ResNet-20 has the published 0.27M parameters.

The CPU evidence in the paper's regime (reports/runs/regime) uses ResNet-20: large enough to fit
a CIFAR-10 subset, small enough for a 2-core machine."""
import torch.nn as nn
import torch.nn.functional as F

from . import register


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.pad = stride, planes - in_planes

    def shortcut(self, x):
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3, width: int = 1):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2, got {depth}")
        n, w = (depth - 2) // 6, 16 * width
        self.conv1 = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        stages, cin = [], w
        for i, planes in enumerate((w, 2 * w, 4 * w)):
            for j in range(n):
                stages.append(BasicBlock(cin, planes, 2 if (i > 0 and j == 0) else 1))
                cin = planes
        self.stages = nn.Sequential(*stages)
        self.linear = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        out = self.stages(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register("resnet20")
def resnet20(num_classes: int, **kw) -> nn.Module:
    return ResNetCifar(20, num_classes, **kw)


@register("resnet56")
def resnet56(num_classes: int, **kw) -> nn.Module:
    return ResNetCifar(56, num_classes, **kw)
