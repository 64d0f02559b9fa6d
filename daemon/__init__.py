"""benchd: a microbenchmark daemon for PyTorch training speed.

This package (the parent side) never imports torch: the daemon must stay small
and able to answer a scrape while a child process does the heavy lifting.
"""

__version__ = "0.1.0"
