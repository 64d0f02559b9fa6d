"""Machines compared like for like: the published comparison's table, from bundles or from Prometheus.

results.py turns runs (from bundles) or series (from a Prometheus server)
into one neutral record; table.py pivots those records into rows (workload x
preset) and columns (machine x device); render.py prints the table as text,
markdown, CSV, JSON or HTML; plots.py draws the figures of `benchd report`.
"""
