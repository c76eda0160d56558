"""What a running view needs, headless: assets and their feeds per venue, the multi-venue sum,
store read and write-back, replay and the demo. Publishes typed events to any number of
subscribers (the app, ``watch``, ``record``). No Textual import (a test enforces it)."""
