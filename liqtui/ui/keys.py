"""Key bindings: every binding has an id, so the ``[keys]`` table of the config file can remap it.

``KEYS`` is the single list (TUI.md's table). ``keymap(config_keys)`` validates a ``[keys]`` table
(unknown binding ids and key names are refused with a message naming them) and returns the
mapping ``App.set_keymap`` takes. Keys are written as Textual names or as the character itself:
``"?"``, ``"question_mark"``, ``"ctrl+n"``, ``"f2"``, several separated by commas.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


class KeymapError(ValueError):
    """A bad ``[keys]`` entry: the message names where it came from, the value and what is
    accepted (the CLI exits 2 with it, like any bad setting)."""


@dataclass(frozen=True)
class Key:
    id: str
    keys: str          # default keys, comma separated (Textual key names)
    action: str
    description: str
    show: bool = False  # shown in the footer
    group: str = "view"
    app: bool = False   # bound on the App (works on every screen), not the main screen


KEYS: tuple[Key, ...] = (
    Key("quit", "q", "quit", "Quit", True, "app", app=True),
    Key("quit_ctrl_c", "ctrl+c", "quit", "Quit", False, "app", app=True),
    Key("help", "question_mark,f1", "help", "Help", True, "app", app=True),
    Key("palette", "ctrl+p", "command_palette", "Commands", False, "app", app=True),
    Key("next_asset", "right_square_bracket", "next_asset", "Next asset", True, "asset"),
    Key("prev_asset", "left_square_bracket", "prev_asset", "Previous asset", False, "asset"),
    *(Key(f"asset_{n}", str(n), f"asset({n - 1})", f"Watchlist asset {n}", False, "asset")
      for n in range(1, 10)),
    Key("pick_asset", "slash", "pick_asset", "Asset", True, "asset"),
    Key("range_longer", "greater_than_sign", "range(1)", "Longer range", True, "view"),
    Key("range_shorter", "less_than_sign", "range(-1)", "Shorter range", False, "view"),
    Key("zoom_in", "plus,equals_sign", "zoom(1)", "Zoom price in", False, "view"),
    Key("zoom_out", "minus", "zoom(-1)", "Zoom price out", False, "view"),
    Key("zoom_reset", "0", "zoom(0)", "Reset price zoom", False, "view"),
    Key("leverage", "l", "cycle_tiers", "Leverage", True, "filter"),
    Key("side", "s", "cycle_sides", "Side", True, "filter"),
    Key("threshold_down", "t", "threshold(-1)", "Threshold down", False, "filter"),
    Key("threshold_up", "T", "threshold(1)", "Threshold up", False, "filter"),
    Key("venue", "v", "cycle_venue", "Venue", False, "view"),
    Key("stack_venues", "V", "stack_venues", "Levels by venue", False, "view"),
    Key("pause", "p", "pause", "Pause", True, "view"),
    Key("replay_faster", "full_stop", "replay_speed(1)", "Replay faster (×2)", False, "view"),
    Key("replay_slower", "comma", "replay_speed(-1)", "Replay slower (÷2)", False, "view"),
    Key("events", "e", "feed_events", "Feed events", False, "view"),
    Key("cursor_left", "left", "cursor(-1,0)", "Cursor left", False, "cursor"),
    Key("cursor_right", "right", "cursor(1,0)", "Cursor right", False, "cursor"),
    Key("cursor_up", "up", "cursor(0,-1)", "Cursor up", False, "cursor"),
    Key("cursor_down", "down", "cursor(0,1)", "Cursor down", False, "cursor"),
    Key("cursor_leave", "escape", "cursor_leave", "Leave the cursor", False, "cursor"),
)
IDS = {k.id: k for k in KEYS}
MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")


def _base_names() -> set[str]:
    from textual.keys import Keys, _character_to_key

    names = {k.value for k in Keys}
    names |= {_character_to_key(chr(c)) for c in range(33, 127)}
    names |= {"space", "tab", "enter", "escape", "backspace", "delete"}
    return names


def normalize_key(text: str) -> str:
    """One key as the user wrote it → Textual's name; ValueError if it is not a key."""
    from textual.keys import _character_to_key

    raw = text.strip()
    if not raw:
        raise ValueError("an empty key")
    if len(raw) == 1:
        return _character_to_key(raw)
    *mods, base = raw.split("+") if not raw.endswith("++") else [*raw[:-2].split("+"), "+"]
    mods = [m.lower() for m in mods]
    bad = [m for m in mods if m not in MODIFIERS]
    if bad or not base:
        raise ValueError(f"{raw!r} is not a key (modifiers: {', '.join(MODIFIERS)})")
    base = _character_to_key(base) if len(base) == 1 else base.lower()
    if base not in _base_names():
        hint = difflib.get_close_matches(base, sorted(_base_names()), n=1)
        raise ValueError(f"{raw!r} is not a key" + (f" (did you mean {hint[0]}?)" if hint else ""))
    return "+".join([*mods, base])


def keymap(config_keys: dict) -> dict[str, str]:
    """``{binding id: (keys, where)}`` from the config → ``{binding id: "k1,k2"}``; a bad id
    or key raises KeymapError naming it and what is accepted."""
    out: dict[str, str] = {}
    for bid, (raw, where) in config_keys.items():
        if bid not in IDS:
            close = difflib.get_close_matches(bid, IDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise KeymapError(f"{where}: unknown binding id {bid!r}{hint}; "
                              f"accepted: {', '.join(IDS)}")
        try:
            out[bid] = ",".join(normalize_key(k) for k in str(raw).split(","))
        except ValueError as e:
            raise KeymapError(f"{where} is {raw!r}: {e}; expected a key such as \"n\", "
                              f"\"ctrl+n\", \"f2\" or several: \"n,f2\"") from None
    return out


def bindings(app: bool):
    """Textual ``Binding`` objects (with ids) for the App or the main screen."""
    from textual.binding import Binding

    return [Binding(k.keys, k.action, k.description, show=k.show, id=k.id,
                    priority=k.id == "quit_ctrl_c")
            for k in KEYS if k.app == app]
