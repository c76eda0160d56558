"""liqtui: a live crypto liquidation heatmap in the terminal."""

__version__ = "0.1.0"
