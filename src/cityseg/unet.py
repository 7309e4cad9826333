"""The course baseline U-Net (TU/e 5LSM0 Cityscapes challenge), with a channel-width multiplier.

Layout at ``base_channels=64, width=1.0`` (channels), identical to the course's ``Model()``:

    inc   DoubleConv(3, 64)                      1/1
    down1 MaxPool2 + DoubleConv(64, 128)         1/2
    down2 MaxPool2 + DoubleConv(128, 256)        1/4
    down3 MaxPool2 + DoubleConv(256, 512)        1/8
    down4 MaxPool2 + DoubleConv(512, 512)        1/16
    up1   upsample x2, cat skip -> DoubleConv(1024, 256, mid=512)
    up2   upsample x2, cat skip -> DoubleConv(512, 128, mid=256)
    up3   upsample x2, cat skip -> DoubleConv(256, 64, mid=128)
    up4   upsample x2, cat skip -> DoubleConv(128, 64, mid=64)
    outc  Conv1x1(64, 19)

17.26 M parameters; 2563.6 GFLOPs at 1x3x1024x2048 by ``FlopCounterMode`` (80.1 at 256x256).

Two knobs size it, because they answer two questions. ``base_channels`` is the architecture: the
course's 64, or fewer for a laptop-sized default; every stage keeps the course's ratios (1:2:4:8:8).
``width`` is the ablation multiplier on top (``dvc exp run -S model.width=0.5`` halves every channel
count of whatever the default is, so FLOPs fall to about a quarter).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

COURSE_BASE = 64  # the course's first-stage channels
STAGE_RATIOS = (1, 2, 4, 8, 8)  # encoder stages relative to the first: 64, 128, 256, 512, 512


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1."""
    return max(1, int(round(channels * width)))


# Submodule attribute names (double_conv, maxpool_conv, up/conv, outc.conv) follow the course's
# model.py, so a state_dict trained with the course code loads into UNet() unchanged.


class DoubleConv(nn.Module):
    """(3x3 conv without bias -> BatchNorm -> ReLU) x 2."""

    def __init__(self, in_ch: int, out_ch: int, mid_ch: int | None = None):
        super().__init__()
        mid_ch = mid_ch or out_ch
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_ch, mid_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """MaxPool 2 then DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_ch, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Bilinear x2 upsampling, pad to the skip's size, concatenate, DoubleConv(mid = in / 2)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(in_ch, out_ch, max(1, in_ch // 2))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        # Odd input sizes: the pooled map was floored, so the upsampled one can be 1 px short.
        dy, dx = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if dy or dx:
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class OutConv(nn.Module):
    """Final 1x1 convolution to class logits."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """Course baseline U-Net with ``base_channels * width`` channels in its first stage.

    ``width`` multiplies every channel count (rounded, min 1); the defaults are the course's net.

    Forward: (B, in_channels, H, W) float -> (B, num_classes, H, W) logits. Any H, W >= 1 works
    (odd sizes are padded in the decoder); multiples of 16 avoid that padding.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 19, width: float = 1.0,
                 base_channels: int = COURSE_BASE):
        super().__init__()
        if width <= 0:
            raise ValueError(f"UNet: width must be > 0, got {width}")
        if base_channels < 1:
            raise ValueError(f"UNet: base_channels must be >= 1, got {base_channels}")
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"UNet: in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}")
        c1, c2, c3, c4, c5 = (scaled(base_channels * r, width) for r in STAGE_RATIOS)
        self.inc = DoubleConv(in_channels, c1)
        self.down1 = Down(c1, c2)
        self.down2 = Down(c2, c3)
        self.down3 = Down(c3, c4)
        self.down4 = Down(c4, c5)
        # Decoder output channels follow the course model: 256, 128, 64, 64 for the course's net.
        self.up1 = Up(c5 + c4, c3)
        self.up2 = Up(c3 + c3, c2)
        self.up3 = Up(c2 + c2, c1)
        self.up4 = Up(c1 + c1, c1)
        self.outc = OutConv(c1, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)
