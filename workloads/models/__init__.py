"""Model definitions, written from the facts in WORKLOADS.md."""
