"""DenseNet-BC for CIFAR (Huang et al. 2017, "Densely Connected Convolutional Networks"):
3x3 stem of 2k channels, dense blocks of BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k) layers,
transitions BN-ReLU-conv1x1 with compression 0.5 then 2x2 average pooling.
``densenet_bc_100_12`` is the paper's three-block CIFAR net (Table 1); ``densenet121`` is the
official PS-KD README's CIFAR DenseNet-121, four blocks [6, 12, 24, 16] of growth 32
(kuangliu/pytorch-cifar layout)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register


class DenseLayer(nn.Module):
    """(N, C, H, W) -> (N, C + growth, H, W): the input concatenated with k new maps."""

    def __init__(self, in_planes, growth):
        super().__init__()
        self.branch = nn.Sequential(
            nn.BatchNorm2d(in_planes), nn.ReLU(inplace=True),
            nn.Conv2d(in_planes, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True),
            nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
        )

    def forward(self, x):
        return torch.cat([x, self.branch(x)], 1)


def transition(in_planes, out_planes):
    return nn.Sequential(nn.BatchNorm2d(in_planes), nn.ReLU(inplace=True),
                         nn.Conv2d(in_planes, out_planes, 1, bias=False), nn.AvgPool2d(2))


class CifarDenseNet(nn.Module):
    def __init__(self, block_sizes, growth, num_classes=100, compression=0.5, in_channels=3):
        super().__init__()
        planes = 2 * growth
        layers = [nn.Conv2d(in_channels, planes, 3, 1, 1, bias=False)]
        for i, size in enumerate(block_sizes):
            for _ in range(size):
                layers.append(DenseLayer(planes, growth))
                planes += growth
            if i < len(block_sizes) - 1:
                out_planes = math.floor(planes * compression)
                layers.append(transition(planes, out_planes))
                planes = out_planes
        self.features = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x):
        out = F.relu(self.bn(self.features(x)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register("densenet_bc_100_12")
def densenet_bc_100_12(num_classes: int, **kw) -> nn.Module:
    # depth 100 = 3 blocks x 16 layers x 2 convs + stem + 2 transitions + classifier
    return CifarDenseNet([16, 16, 16], 12, num_classes, **kw)


@register("densenet121")
def densenet121(num_classes: int, **kw) -> nn.Module:
    return CifarDenseNet([6, 12, 24, 16], 32, num_classes, **kw)
