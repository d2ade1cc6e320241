"""Lazy re-exports for package ``__init__`` files (PEP 562).

A package's ``__init__`` lists its public names; each is imported from its submodule the first
time it is used. This exists for start-up time only - ``aot-edu --help`` and the plain-data
registries must not import torch - never to break an import cycle: the layers below are checked
by import-linter (``make lint``), and every submodule imports its dependencies at the top.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, list[str]], submodules: tuple[str, ...] = ()
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``, whose ``exports`` map a relative
    submodule name (``".engine"``) to the public names it defines. ``submodules`` are imported
    when first used as attributes (``aot_edu.video.segment_video`` after ``import aot_edu``)."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        if name in submodules:
            return importlib.import_module(f".{name}", package)
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name], package), name)

    def __dir__() -> list[str]:
        return sorted([*where, *submodules])

    return __getattr__, __dir__, sorted(where)
