"""Sensors, the sampler thread and per-epoch aggregation.

Nothing here touches hardware at import time: a sensor's library is imported
and initialised in `open()`, and a sensor that cannot be read says why.
"""
