"""Additive PyramidNet with bottleneck units for CIFAR (Han et al. 2017, "Deep Pyramidal Residual
Networks"), the layout of dyhan0920/PyramidNet-PyTorch used by the CutMix and PS-KD code: 3x3
stem of 16 channels, three stages of (depth - 2) / 9 bottleneck units whose width grows by
alpha / L per unit (L = all units), zero-padded identity shortcuts, 2x2 average pooling on the
shortcut where a unit downsamples. Optional ShakeDrop on every residual branch (Appendix B.1)."""
import torch.nn as nn
import torch.nn.functional as F

from . import register
from .shakedrop import ShakeDrop, linear_decay_keep_probs


class PyramidBottleneck(nn.Module):
    """BN-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN: no ReLU on entry or after the sum, as in
    Han et al.; (N, in_planes, H, W) -> (N, 4 * planes, H / stride, W / stride)."""
    expansion = 4

    def __init__(self, in_planes, planes, stride=1, p_keep=None):
        super().__init__()
        out_planes = planes * self.expansion
        self.branch = nn.Sequential(
            nn.BatchNorm2d(in_planes),
            nn.Conv2d(in_planes, planes, 1, bias=False),
            nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, out_planes, 1, bias=False),
            nn.BatchNorm2d(out_planes),
        )
        self.shake_drop = ShakeDrop(p_keep) if p_keep is not None else nn.Identity()
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if stride != 1 else nn.Identity()
        self.extra_channels = out_planes - in_planes

    def forward(self, x):
        out = self.shake_drop(self.branch(x))
        shortcut = self.pool(x)
        # Zero-pad the identity to the wider branch: the shortcut has no parameters.
        return out + F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))


class PyramidNet(nn.Module):
    def __init__(self, depth, alpha, num_classes=100, shakedrop=False, p_last=0.5, in_channels=3):
        super().__init__()
        if (depth - 2) % 9:
            raise ValueError(f"bottleneck PyramidNet depth must be 9n + 2, got {depth}")
        n = (depth - 2) // 9
        num_units = 3 * n
        # Width of unit k (1-based) before expansion: round(16 + alpha * k / L), as the official
        # code's running sum; with alpha=240, L=66 no width sits on a .5 tie.
        widths = [round(16 + alpha * k / num_units) for k in range(1, num_units + 1)]
        p_keeps = linear_decay_keep_probs(num_units, p_last) if shakedrop else [None] * num_units

        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        units, in_planes = [], 16
        for k, (planes, p_keep) in enumerate(zip(widths, p_keeps)):
            stride = 2 if k in (n, 2 * n) else 1
            units.append(PyramidBottleneck(in_planes, planes, stride, p_keep))
            in_planes = planes * PyramidBottleneck.expansion
        self.units = nn.Sequential(*units)
        self.bn_final = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():  # He init with fan_out, as the official code
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        out = self.units(self.bn1(self.conv1(x)))
        out = F.relu(self.bn_final(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register("pyramidnet200_240")
def pyramidnet200_240(num_classes: int, shakedrop: bool = False, **kw) -> nn.Module:
    """PyramidNet-200, alpha=240, bottleneck (Table 1); ``shakedrop=True`` for the "+ SD" rows."""
    return PyramidNet(200, 240, num_classes, shakedrop=shakedrop, **kw)
