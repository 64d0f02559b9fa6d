"""Verdicts a fleet can act on: whether each device is healthy, degraded, failing or unknown.

Figures and pages are for people; schedulers need a verdict they can trust
enough to drain a node. A verdict here is decided from real training runs
against a named band (the device's own history, its fleet's same model, or a
reference shipped with benchd), and confirmed over several runs before it
changes either way (verdict.py). The daemon keeps one per device and config
as runs finish (book.py); `benchd health` prints them in the form
node-problem-detector and Slurm's HealthCheckProgram expect.
"""
