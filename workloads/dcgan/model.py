"""DCGAN generator and discriminator for 64x64 RGB images (no conv biases)."""

from __future__ import annotations

from torch import nn

LATENT = 100
FEATURES = 64
CHANNELS = 3


def _up(c_in: int, c_out: int, stride: int, padding: int) -> list[nn.Module]:
    return [
        nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(True),
    ]


def _down(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        f = FEATURES
        self.main = nn.Sequential(
            *_up(LATENT, f * 8, 1, 0),
            *_up(f * 8, f * 4, 2, 1),
            *_up(f * 4, f * 2, 2, 1),
            *_up(f * 2, f, 2, 1),
            nn.ConvTranspose2d(f, CHANNELS, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        f = FEATURES
        self.main = nn.Sequential(
            nn.Conv2d(CHANNELS, f, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True),
            *_down(f, f * 2),
            *_down(f * 2, f * 4),
            *_down(f * 4, f * 8),
            nn.Conv2d(f * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, images):
        return self.main(images).view(-1, 1).squeeze(1)  # the example's shape steps, and their backward


def init_weights(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: conv N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
