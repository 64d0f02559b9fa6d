"""Siamese network: a shared single-channel ResNet-18 tower and a small classifier head."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

FEATURES = 512


class SiameseNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        tower = resnet18(weights=None)
        tower.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.tower = nn.Sequential(*list(tower.children())[:-1])  # drop the fc layer
        self.head = nn.Sequential(
            nn.Linear(FEATURES * 2, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 1),
        )
        self.sigmoid = nn.Sigmoid()
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.constant_(layer.bias, 0.01)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.tower(images).flatten(1)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        # Each image passes through the tower on its own, as two separate batches.
        features = torch.cat((self.embed(first), self.embed(second)), dim=1)
        return self.sigmoid(self.head(features))  # (batch, 1): the trainer squeezes, as the example did
