"""LQ-1, the liquidation model: pure numpy (no asyncio, aiohttp or textual; a test enforces it)."""

from .colour import ColorScale
from .engine import build_heatmap
from .grid import Grid, choose_bin_width
from .heatmap import Heatmap
from .levels import Level, LiquidationMap
from .liqprice import bracket_for, liquidation_price
from .params import DEFAULT_LEVERAGES, DEFAULT_WEIGHTS, ModelParams, tier_label

__all__ = [
    "ColorScale", "DEFAULT_LEVERAGES", "DEFAULT_WEIGHTS", "Grid", "Heatmap", "Level",
    "LiquidationMap", "ModelParams", "bracket_for", "build_heatmap", "choose_bin_width",
    "liquidation_price", "tier_label",
]
