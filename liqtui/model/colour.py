"""Colour normalisation: ``v = clip(H / (θ·S), 0, 1)`` then a gamma or log curve.

``S`` is the maximum over the visible pixels, *held* between column rolls and user actions:
a new maximum in the live column must not recolour (and resend) the whole screen. The legend
shows ``θ·S``, the USD of full yellow.
"""

from __future__ import annotations

import math

import numpy as np

CURVES = ("gamma", "log")


class ColorScale:
    def __init__(self, threshold: float = 0.85, curve: str = "gamma", gamma: float = 0.5,
                 log_k: float = 100.0):
        if not (isinstance(threshold, (int, float)) and 0 < threshold <= 1):
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        if curve not in CURVES:
            raise ValueError(f"colour curve must be one of {', '.join(CURVES)}, got {curve!r}")
        if not (gamma > 0 and math.isfinite(gamma)):
            raise ValueError(f"gamma must be a positive number, got {gamma!r}")
        self.threshold, self.curve, self.gamma, self.log_k = float(threshold), curve, gamma, log_k
        self.scale = 0.0  # S: the held maximum, USD

    def rescale(self, visible: np.ndarray) -> float:
        """Take a new S from the visible pixels (call on column rolls and user actions only)."""
        finite = np.asarray(visible, dtype=np.float64)
        self.scale = float(np.nanmax(finite)) if finite.size and np.isfinite(finite).any() else 0.0
        self.scale = max(self.scale, 0.0)
        return self.scale

    @property
    def full_usd(self) -> float:
        """USD of full yellow (the legend maximum)."""
        return self.threshold * self.scale

    def normalize(self, heat: np.ndarray) -> np.ndarray:
        """Values in [0, 1] against the held scale; 0 stays exactly 0 (black)."""
        h = np.asarray(heat, dtype=np.float64)
        if self.full_usd <= 0:
            return np.zeros_like(h)
        x = np.clip(h / self.full_usd, 0.0, 1.0)
        if self.curve == "gamma":
            return x**self.gamma
        return np.log1p(self.log_k * x) / math.log1p(self.log_k)

    def quantize(self, heat: np.ndarray, levels: int) -> np.ndarray:
        """Palette indices 0 … levels−1; index 0 only for exactly zero heat."""
        v = self.normalize(heat)
        idx = np.ceil(v * (levels - 1)).astype(np.int16)
        return np.where(np.asarray(heat) > 0, np.maximum(idx, 1), 0)
