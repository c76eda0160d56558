"""LQ-1, the liquidation model: pure numpy (no asyncio, aiohttp or textual; a test enforces it).

Names are loaded on first use, so a process that needs one module (the demo's simulation child
needs ``grid`` and ``liqprice``) does not import the others.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "ColorScale": "colour", "build_heatmap": "engine", "Grid": "grid",
    "choose_bin_width": "grid", "Heatmap": "heatmap", "Level": "levels",
    "LiquidationMap": "levels", "bracket_for": "liqprice", "liquidation_price": "liqprice",
    "DEFAULT_LEVERAGES": "params", "DEFAULT_WEIGHTS": "params", "ModelParams": "params",
    "tier_label": "params",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
