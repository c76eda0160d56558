"""The simulated exchange: a market of leveraged traders (``Market``) served over the venues'
own protocols (``server``)."""

from .market import Market, SymbolSpec

__all__ = ["Market", "SymbolSpec"]
