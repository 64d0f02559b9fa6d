"""Child process that reports the torch build and the devices it can see, as JSON on stdout.

The parent never imports torch; when it needs to know which devices exist (to
check `--device` before queueing anything) it asks this probe.
"""

from __future__ import annotations

import json
import sys


def describe() -> dict[str, object]:
    import torch

    from benchd.workloads.device import available_devices

    devices = available_devices()
    return {
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "devices": [d.to_json() for d in devices],
        "default": devices[0].id,
    }


if __name__ == "__main__":
    json.dump(describe(), sys.stdout)
    sys.stdout.write("\n")
