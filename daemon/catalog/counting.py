"""Closed-form parameter counts of the layers the workloads are built from."""

from __future__ import annotations


def conv(c_in: int, c_out: int, kernel: int, bias: bool = False) -> int:
    return c_in * c_out * kernel * kernel + (c_out if bias else 0)


def affine_norm(channels: int) -> int:
    """BatchNorm2d or LayerNorm: one weight and one bias per channel."""
    return 2 * channels


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out
