"""The providers hookbus ships: one folder each, registered as one collection.

Each subpackage exports ``PROVIDER`` (a :class:`hookbus.provider.Provider`); this package
finds them by walking its own folders, so adding a provider is adding its folder (and its
data schema in ``schemas/data/``). The ``hookbus.providers`` entry point ``builtin`` names
:data:`BUILT_IN`; third-party packages register their own providers the same way.
"""

from __future__ import annotations

import importlib
import pkgutil

from hookbus.provider import Provider

__all__ = ["BUILT_IN"]


def _built_in() -> tuple[Provider, ...]:
    found = []
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            found.append(importlib.import_module(f"{__name__}.{module.name}").PROVIDER)
    return tuple(found)


BUILT_IN: tuple[Provider, ...] = _built_in()
