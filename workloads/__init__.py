"""The four training workloads and the harness that runs them in a child process.

Only the harness, models and torch-facing dataset wrappers import torch; the
dataset readers' header checks and the synthetic generators stay torch-free so
the parent can validate and prepare data without paying for a torch import.
"""
