"""The names of the layers below that front ends use (the venue table, feed settings and
states), so a front end imports the session only."""

from ..feeds.events import FeedState
from ..feeds.settings import FeedSettings
from ..feeds.venues import VENUES

__all__ = ["VENUES", "FeedSettings", "FeedState"]
