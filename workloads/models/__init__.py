"""Model definitions, written from the facts in docs/workloads.md."""
