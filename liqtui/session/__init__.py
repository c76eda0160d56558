"""What a running view needs, headless: assets and their feeds per venue, the multi-venue sum,
store read and write-back, replay and the demo. Publishes typed events (``events``) to any
number of subscribers: the app, ``watch`` and ``record`` are front ends of a ``Session``, and
none of them wires feed callbacks itself. No Textual import (a test enforces it).

Names are loaded on first use, so a light entry point pays only for what it asks for.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "Session": "session", "VenueAssets": "venue", "AssetFeed": "asset", "FeedEvent": "asset",
    "ReplaySpec": "asset", "VenueSum": "sum", "ALL": "sum", "WAITING": "sum", "Bus": "bus",
    "Demo": "demo", "demo_symbols": "demo",
    # what front ends need of the layers below, so they import the session only
    "VENUES": "registry", "FeedSettings": "registry", "FeedState": "registry",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
