"""The format module of a dataset a registered workload trains on (imported only when asked for)."""

from __future__ import annotations

import importlib
from typing import cast

from benchd.datasets.layout import DatasetFormat


def names() -> tuple[str, ...]:
    from benchd.catalog import datasets

    return tuple(datasets())


def get_format(name: str) -> DatasetFormat:
    """ValueError names the valid datasets when `name` is none of them."""
    from benchd.catalog import CatalogError, get_dataset

    try:
        return cast(DatasetFormat, importlib.import_module(get_dataset(name).module))
    except CatalogError as exc:
        raise ValueError(exc.reason) from None
