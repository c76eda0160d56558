"""Package names imported on first use, so a light entry point (``--help``, the demo's first
child, the sim's event types) does not pay for the heavy modules beside it."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """A module ``__getattr__``: ``name`` comes from the submodule ``exports[name]`` of
    ``package``, imported when it is first asked for."""

    def __getattr__(name: str):
        mod = exports.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{mod}"), name)

    return __getattr__
