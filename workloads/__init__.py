"""The child's side: the harness, the four models and their trainers, which import torch.

The datasets they read are `benchd.datasets`, torch-free and shared with the
parent, which checks and prepares data without paying for a torch import.
"""
