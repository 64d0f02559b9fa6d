"""Which dataset module serves which dataset name (imported only when asked for)."""

from __future__ import annotations

import importlib
from typing import cast

from benchd.datasets.layout import DatasetFormat

_MODULES = {
    "lsun-classroom": "benchd.datasets.lsun",
    "mnist": "benchd.datasets.mnist",
    "wikitext-2": "benchd.datasets.wikitext",
}

NAMES = tuple(_MODULES)


def get_format(name: str) -> DatasetFormat:
    try:
        module = _MODULES[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(NAMES)}") from None
    return cast(DatasetFormat, importlib.import_module(module))
