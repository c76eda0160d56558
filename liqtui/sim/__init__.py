"""The simulated exchange: a market of leveraged traders (``Market``) served over the venues'
own protocols (``server``).

``Market`` and ``SymbolSpec`` are loaded on first use, so ``--demo`` can import the light
``symbols`` and ``child`` modules and start generating before numpy is imported.
"""

__all__ = ["Market", "SymbolSpec"]


def __getattr__(name):
    if name in __all__:
        from . import market

        return getattr(market, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
