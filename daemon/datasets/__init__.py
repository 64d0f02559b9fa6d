"""Readers for the datasets' real on-disk formats and generators of synthetic twins.

These modules import numpy, Pillow and lmdb but never torch, so the parent
process can check and prepare data before a child is spawned.
"""
