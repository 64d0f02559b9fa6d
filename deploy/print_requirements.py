"""Print the project's runtime dependencies, one per line, for a layer installed before the source.

Used by the Dockerfile so that dependency layers change only when
pyproject.toml does; torch is left out, as the image installs it from the
variant's own index (CUDA or CPU wheels).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib


def requirements(pyproject: Path, *, skip: tuple[str, ...] = ("torch", "torchvision")) -> list[str]:
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in dependencies if re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] not in skip]


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("pyproject.toml")
    print("\n".join(requirements(path)))
