"""Our efficient network for the efficiency benchmark (Dice per FLOP): a Fast-SCNN-style net.

After Poudel et al., "Fast-SCNN: Fast Semantic Segmentation Network" (BMVC 2019), written here
from the paper's description. Channels at ``width=1.0``, strides relative to the (scaled) input:

    learning to downsample  conv3x3 s2 (32) -> DSConv s2 (48) -> DSConv s2 (64)         1/8
    global features         3x bottleneck(64, s2) -> 3x bottleneck(96, s2)              1/32
                            -> 3x bottleneck(128, s1) -> pyramid pooling (1, 2, 3, 6)   1/32
    feature fusion          upsample to 1/8, depthwise 3x3 + 1x1, add 1x1(1/8 branch)   1/8
    classifier              2x DSConv(128) -> dropout -> 1x1 to classes -> bilinear to input size

``input_scale`` resizes the input inside ``forward`` (so a FLOP counter applied to the whole
model sees the saving) and the logits are upsampled back to the caller's H x W, so the
contract ``(B,3,H,W) -> (B,C,H,W)`` holds for every size, odd ones included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _ch(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class ConvBNReLU(nn.Sequential):
    """k x k conv (no bias) -> BatchNorm -> ReLU; ``groups=in_ch`` makes it depthwise."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DSConv(nn.Sequential):
    """Depthwise-separable conv: depthwise 3x3 (stride s) -> pointwise 1x1, each with BN + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__(ConvBNReLU(in_ch, in_ch, 3, stride, groups=in_ch), ConvBNReLU(in_ch, out_ch, 1))


class Bottleneck(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand (t) -> depthwise 3x3 (stride) -> 1x1 linear project."""

    def __init__(self, in_ch: int, out_ch: int, expansion: int = 6, stride: int = 1):
        super().__init__()
        hidden = in_ch * expansion
        self.residual = stride == 1 and in_ch == out_ch
        self.block = nn.Sequential(
            ConvBNReLU(in_ch, hidden, 1),
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
            ConvBNReLU(hidden, out_ch, 1, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class PyramidPooling(nn.Module):
    """PSPNet-style context: average-pool to each bin size, 1x1 conv, upsample, concat, fuse."""

    def __init__(self, in_ch: int, out_ch: int, bins: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        branch = max(1, in_ch // len(bins))
        self.bins = bins
        # No BatchNorm on the pooled maps: a 1x1 map with batch size 1 has a single value per
        # channel, which BatchNorm cannot normalise in training.
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_ch, branch, 1), nn.ReLU(inplace=True)) for _ in bins
        )
        self.fuse = ConvBNReLU(in_ch + branch * len(bins), out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = [x]
        for bin_size, branch in zip(self.bins, self.branches):
            pooled = branch(F.adaptive_avg_pool2d(x, bin_size))
            feats.append(F.interpolate(pooled, size=size, mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(feats, dim=1))


class FeatureFusion(nn.Module):
    """Fuse the 1/8 detail branch with the upsampled 1/32 context branch by addition."""

    def __init__(self, high_ch: int, low_ch: int, out_ch: int):
        super().__init__()
        self.low_dw = ConvBNReLU(low_ch, low_ch, 3, groups=low_ch)
        self.low_pw = ConvBNReLU(low_ch, out_ch, 1, relu=False)
        self.high_pw = ConvBNReLU(high_ch, out_ch, 1, relu=False)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(self.high_pw(high) + self.low_pw(self.low_dw(low)))


class FastSCNN(nn.Module):
    """Fast-SCNN-style segmenter. (B, in_channels, H, W) float -> (B, num_classes, H, W) logits.

    ``width`` multiplies every channel count (rounded, min 1); ``input_scale`` (> 0) is the
    internal resolution relative to the input (0.5 = run the network at half size).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 19, width: float = 1.0, input_scale: float = 1.0):
        super().__init__()
        if width <= 0:
            raise ValueError(f"FastSCNN: width must be > 0, got {width}")
        if not input_scale > 0:
            raise ValueError(f"FastSCNN: input_scale must be > 0, got {input_scale}")
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"FastSCNN: in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}")
        self.input_scale = float(input_scale)
        c32, c48, c64, c96, c128 = (_ch(c, width) for c in (32, 48, 64, 96, 128))

        self.downsample = nn.Sequential(  # -> 1/8
            ConvBNReLU(in_channels, c32, 3, stride=2),
            DSConv(c32, c48, stride=2),
            DSConv(c48, c64, stride=2),
        )
        self.global_features = nn.Sequential(  # -> 1/32
            *self._stage(c64, c64, stride=2),
            *self._stage(c64, c96, stride=2),
            *self._stage(c96, c128, stride=1),
            PyramidPooling(c128, c128),
        )
        self.fusion = FeatureFusion(c64, c128, c128)
        self.classifier = nn.Sequential(
            DSConv(c128, c128),
            DSConv(c128, c128),
            nn.Dropout(0.1),
            nn.Conv2d(c128, num_classes, 1),
        )

    @staticmethod
    def _stage(in_ch: int, out_ch: int, stride: int, blocks: int = 3) -> list[nn.Module]:
        return [Bottleneck(in_ch if i == 0 else out_ch, out_ch, stride=stride if i == 0 else 1) for i in range(blocks)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        if self.input_scale != 1.0:
            inner = [max(1, int(round(s * self.input_scale))) for s in size]
            x = F.interpolate(x, size=inner, mode="bilinear", align_corners=False)
        high = self.downsample(x)  # (B, 64w, H/8, W/8)
        low = self.global_features(high)  # (B, 128w, H/32, W/32)
        logits = self.classifier(self.fusion(high, low))  # (B, C, H/8, W/8)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
