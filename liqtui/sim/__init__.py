"""The simulated exchange: a market of leveraged traders (``Market``) served over the venues'
own protocols (``server``).

``Market`` and ``SymbolSpec`` are loaded on first use, so ``--demo`` can import the light
``symbols`` and ``child`` modules and start generating before numpy is imported.
"""

from ..lazy import lazy_exports

__all__ = ["Market", "SymbolSpec"]
__getattr__ = lazy_exports(__name__, {"Market": "market", "SymbolSpec": "market"})
