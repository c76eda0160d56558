"""Settings: defaults < config file (TOML) < environment ``LIQTUI_*`` < command-line flags.

The config file is ``--config FILE``, else ``$LIQTUI_CONFIG``, else
``$XDG_CONFIG_HOME/liqtui/config.toml`` (``~/.config/liqtui/config.toml``; optional)::

    [model]
    leverages = [5, 10, 25, 50, 100]
    weights = [0.10, 0.25, 0.30, 0.20, 0.15]
    tier_filter = "all"        # "all", "high", "low" or a list of leverages
    side_filter = "both"       # "both", "long", "short"
    bin_width = "auto"         # or a 1-2-5 width such as 50
    half_life = "off"          # or a duration such as "12h"

    [colour]
    threshold = 0.85

    [ui]
    watchlist = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT"]
    range = "24h"              # the displayed range: 12h, 24h, 3d, 7d or 30d
    lookback = "30d"           # what the model runs over (a duration, up to 30d)

    [keys]                     # binding id = "key" or "key1,key2" (see the help screen, ?)
    next_asset = "n"

    [store]                    # the local store of what was captured (liqtui record, the app)
    data_dir = "~/.local/share/liqtui"   # default $XDG_DATA_HOME/liqtui
    retention = "365d"         # prune what is older (a duration, or "off")

Model settings left unset fall through to ``ModelParams``'s own defaults, so there is one place
that defines them. Kept free of numpy so that importing it costs nothing.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .units import DAY, HOUR, UI_RANGES, parse_duration  # noqa: F401 - UI_RANGES: re-exported

DEFAULT_THRESHOLD = 0.85
DEFAULT_RETENTION_DAYS = 365.0
STORE_FILENAME = "liqtui.db"


class ConfigError(ValueError):
    """A bad setting; the message names where it came from, the value and what is accepted."""


class _Bad(Exception):
    """Raised by a parser; the loader adds where the value came from."""


# ---------------------------------------------------------------------------- value parsers


def _number_list(v, *, minimum: float, suffix: str = ""):
    items = v.replace(" ", "").split(",") if isinstance(v, str) else v
    if not isinstance(items, (list, tuple)) or not items:
        raise _Bad
    out = []
    for x in items:
        if isinstance(x, bool):
            raise _Bad
        if suffix and isinstance(x, str) and x.lower().endswith(suffix):
            x = x[: -len(suffix)]  # "25x,50x" reads as naturally as "25,50"
        try:
            x = float(x)
        except (TypeError, ValueError):
            raise _Bad from None
        if not (math.isfinite(x) and x >= minimum):
            raise _Bad
        out.append(x)
    return tuple(out)


def _number(v, ok=lambda x: True):
    if isinstance(v, bool):
        raise _Bad
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise _Bad from None
    if not (math.isfinite(x) and ok(x)):
        raise _Bad
    return x


def _boolean(v):
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise _Bad


def _choice(*choices):
    def parse(v):
        if isinstance(v, str) and v.strip().lower() in choices:
            return v.strip().lower()
        raise _Bad

    return parse


def _tiers(v):
    if isinstance(v, str) and v.strip().lower() in ("all", "high", "low"):
        return v.strip().lower()
    return _number_list(v, minimum=1, suffix="x")


def _is_125(w: float) -> bool:
    e = math.floor(math.log10(w))
    m = w / 10.0**e
    return any(abs(m - k) <= 1e-9 * k for k in (1, 2, 5, 10))


def _bin_width(v):
    if isinstance(v, str) and v.strip().lower() == "auto":
        return None
    return _number(v, lambda x: x > 0 and _is_125(x))


def _half_life(v):
    if isinstance(v, str) and v.strip().lower() in ("off", "none"):
        return None
    if not isinstance(v, str):
        raise _Bad  # a bare number would be ambiguous (seconds? hours?)
    try:
        return parse_duration(v)
    except ValueError:
        raise _Bad from None


def _symbol_list(v):
    items = v.split(",") if isinstance(v, str) else v
    if not isinstance(items, (list, tuple)) or not items:
        raise _Bad
    out = []
    for x in items:
        if not isinstance(x, str) or not x.strip().isalnum():
            raise _Bad
        out.append(x.strip().upper())
    return tuple(dict.fromkeys(out))


MAX_LOOKBACK_MS = 30 * DAY


def _range(v):
    if isinstance(v, str) and v.strip().lower() in UI_RANGES:
        return v.strip().lower()
    raise _Bad


def _lookback(v):
    if not isinstance(v, str):
        raise _Bad
    try:
        ms = parse_duration(v)
    except ValueError:
        raise _Bad from None
    if not (HOUR <= ms <= MAX_LOOKBACK_MS):
        raise _Bad
    return ms


def _data_dir(v):
    if not isinstance(v, str) or not v.strip():
        raise _Bad
    return str(Path(v.strip()).expanduser())


def _retention(v):
    """A duration of at least a day, or off -> days (None: keep everything)."""
    if isinstance(v, str) and v.strip().lower() in ("off", "none"):
        return None
    if not isinstance(v, str):
        raise _Bad
    try:
        ms = parse_duration(v)
    except ValueError:
        raise _Bad from None
    if ms < DAY:
        raise _Bad
    return ms / DAY


def _seconds(v):
    """A duration such as '30s', '2m', '23h50m' -> seconds (a bare number is ambiguous)."""
    if not isinstance(v, str):
        raise _Bad
    try:
        return parse_duration(v) / 1000.0
    except ValueError:
        raise _Bad from None


@dataclass(frozen=True)
class Option:
    table: str
    key: str
    env: str
    flag: str
    parse: object
    accepted: str


OPTIONS = {
    o.key: o
    for o in (
        Option("model", "leverages", "LIQTUI_LEVERAGES", "--leverages",
               lambda v: _number_list(v, minimum=1, suffix="x"),
               "a list of distinct leverages ≥ 1, e.g. 5,10,25,50,100"),
        Option("model", "weights", "LIQTUI_WEIGHTS", "--weights",
               lambda v: _number_list(v, minimum=0),
               "a list of weights ≥ 0 summing to 1, one per leverage, e.g. 0.1,0.25,0.3,0.2,0.15"),
        Option("model", "tier_filter", "LIQTUI_TIERS", "--tiers", _tiers,
               "all, high (≥ 25x), low (≤ 10x) or a list of leverages, e.g. 25,50,100"),
        Option("model", "side_filter", "LIQTUI_SIDES", "--sides", _choice("both", "long", "short"),
               "both, long or short"),
        Option("model", "bin_width", "LIQTUI_BIN_WIDTH", "--bin-width", _bin_width,
               "auto or a positive width in the 1-2-5 series (…, 10, 20, 50, 100, …)"),
        Option("model", "tick_size", "LIQTUI_TICK_SIZE", "--tick-size",
               lambda v: _number(v, lambda x: x > 0), "a positive number, e.g. 0.1"),
        Option("model", "alpha", "LIQTUI_ALPHA", "--alpha",
               lambda v: _number(v, lambda x: 0 <= x <= 1), "a number in [0, 1]"),
        Option("model", "entry_spread", "LIQTUI_ENTRY_SPREAD", "--entry-spread", _boolean,
               "true or false"),
        Option("model", "both_sides", "LIQTUI_BOTH_SIDES", "--both-sides", _boolean,
               "true or false"),
        Option("model", "half_life", "LIQTUI_HALF_LIFE", "--half-life", _half_life,
               "off or a duration such as 30m, 12h, 2d"),
        Option("model", "seed", "LIQTUI_SEED", "--seed", _boolean, "true or false"),
        Option("colour", "threshold", "LIQTUI_THRESHOLD", "--threshold",
               lambda v: _number(v, lambda x: 0 < x <= 1), "a number in (0, 1], e.g. 0.85"),
        # feed timers (FeedSettings); the rest of FeedSettings keeps the venue's own numbers
        Option("feeds", "stale_timeout", "LIQTUI_STALE_TIMEOUT", "--stale-timeout", _seconds,
               "a duration such as 30s or 2m (no data frame for this long: reconnect)"),
        Option("feeds", "backoff_cap", "LIQTUI_BACKOFF_CAP", "--backoff-cap", _seconds,
               "a duration such as 30s (the longest wait between reconnects)"),
        Option("feeds", "oi_poll", "LIQTUI_OI_POLL", "--oi-poll", _seconds,
               "a duration such as 5s (how often open interest is polled)"),
        Option("feeds", "reconnect_after", "LIQTUI_RECONNECT_AFTER", "--reconnect-after", _seconds,
               "a duration such as 23h50m (reconnect before the venue's 24 h cut)"),
        # the terminal UI
        Option("ui", "watchlist", "LIQTUI_WATCHLIST", "--watchlist", _symbol_list,
               "a list of symbols, e.g. BTCUSDT,ETHUSDT"),
        Option("ui", "range", "LIQTUI_RANGE", "--range", _range, "12h, 24h, 3d, 7d or 30d"),
        Option("ui", "lookback", "LIQTUI_LOOKBACK", "--lookback", _lookback,
               "a duration from 1h to 30d, e.g. 30d, 7d, 36h"),
        # the local store (liqtui.store)
        Option("store", "data_dir", "LIQTUI_DATA_DIR", "--data-dir", _data_dir,
               "a directory, e.g. ~/.local/share/liqtui"),
        Option("store", "retention", "LIQTUI_RETENTION", "--retention", _retention,
               "a duration of at least 1d, e.g. 90d, or off"),
    )
}
TABLES = {t: [o.key for o in OPTIONS.values() if o.table == t]
          for t in ("model", "colour", "feeds", "ui", "store")}
TABLES["keys"] = []  # binding id -> keys; the ids are the UI's (validated by liqtui.ui.keys)
DEFAULT_WATCHLIST = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT")
# config key -> FeedSettings name
_FEED_NAME = {"stale_timeout": "stale_timeout_s", "backoff_cap": "backoff_cap_s",
              "oi_poll": "oi_poll_s", "reconnect_after": "max_connection_age_s"}
# config key -> ModelParams name, where they differ
_PARAM_NAME = {"half_life": "half_life_ms"}


# ---------------------------------------------------------------------------- the settings


@dataclass
class Settings:
    values: dict = field(default_factory=dict)  # key -> parsed value (only keys someone set)
    sources: dict = field(default_factory=dict)  # key -> where the value came from
    config_path: Path | None = None
    keys: dict = field(default_factory=dict)  # [keys]: binding id -> (keys string, where)

    @property
    def watchlist(self) -> tuple[str, ...]:
        return self.values.get("watchlist", DEFAULT_WATCHLIST)

    @property
    def threshold(self) -> float:
        return self.values.get("threshold", DEFAULT_THRESHOLD)

    def store_path(self, env=None) -> Path:
        """The store file: [store] data_dir (or --data-dir, LIQTUI_DATA_DIR), else the XDG data
        directory."""
        d = self.values.get("data_dir")
        return (Path(d) if d else default_data_dir(env)) / STORE_FILENAME

    @property
    def retention_days(self) -> float | None:
        return self.values.get("retention", DEFAULT_RETENTION_DAYS)

    def model_kwargs(self) -> dict:
        """Keyword arguments for ``ModelParams``/``build_heatmap`` (unset keys omitted)."""
        return {
            _PARAM_NAME.get(k, k): v for k, v in self.values.items() if OPTIONS[k].table == "model"
        }

    def model_params(self):
        """Validated ``ModelParams``; a cross-field mistake names where the settings came from."""
        from liqtui.model import ModelParams  # numpy: only when a command needs the model

        try:
            return ModelParams(**self.model_kwargs())
        except ValueError as e:
            origin = ", ".join(f"{k} from {self.sources[k]}" for k in self.values
                               if OPTIONS[k].table == "model")
            raise ConfigError(f"{e}" + (f" ({origin})" if origin else "")) from None


    def feed_settings(self):
        """Validated ``FeedSettings`` with the timers someone set."""
        from liqtui.feeds.settings import FeedSettings

        kw = {_FEED_NAME[k]: v for k, v in self.values.items() if OPTIONS[k].table == "feeds"}
        if "backoff_cap_s" in kw:  # a cap below the default first delay lowers the first delay
            kw.setdefault("backoff_base_s", min(FeedSettings.backoff_base_s, kw["backoff_cap_s"]))
        try:
            return FeedSettings(**kw)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def default_data_dir(env=None) -> Path:
    """``$XDG_DATA_HOME/liqtui`` (an absolute one, as the XDG spec says), else
    ~/.local/share/liqtui."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "liqtui"


def default_config_path(env=None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "liqtui" / "config.toml"


def _set(settings: Settings, key: str, raw, where: str) -> None:
    opt = OPTIONS[key]
    try:
        settings.values[key] = opt.parse(raw)
    except _Bad:
        shown = raw if isinstance(raw, str) else _toml_repr(raw)
        raise ConfigError(f"{where} is {shown!r}, expected {opt.accepted}") from None
    settings.sources[key] = where


def _toml_repr(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_repr(x) for x in v) + "]"
    return str(v)


def _did_you_mean(name: str, accepted) -> str:
    close = difflib.get_close_matches(name, accepted, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _read_file(settings: Settings, path: Path) -> None:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config {path}: no such file") from None
    except OSError as e:
        raise ConfigError(f"config {path}: cannot read ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path}: not valid TOML ({e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config {path}: not UTF-8 text (byte {e.object[e.start]:#04x} at "
                          f"{e.start}); TOML files are UTF-8") from None
    except RecursionError:
        raise ConfigError(f"config {path}: nested too deeply to be a liqtui config (tables and "
                          "arrays a few levels deep are accepted)") from None
    tables = ", ".join(f"[{t}]" for t in TABLES)
    for table, body in doc.items():
        if not isinstance(body, dict):
            raise ConfigError(
                f"config {path}: unknown key {table!r} outside a table; accepted tables: {tables}"
            )
        if table not in TABLES:
            hint = _did_you_mean(table, TABLES)
            raise ConfigError(f"config {path}: unknown table [{table}]{hint}; accepted tables: {tables}")
        if table == "keys":
            for key, raw in body.items():
                where = f"config {path}: [keys] {key}"
                if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
                    raw = ",".join(raw)
                if not isinstance(raw, str) or not raw.strip():
                    raise ConfigError(f"{where} is {_toml_repr(raw)!r}, expected a key such as "
                                      f'"n" or "ctrl+n", or several: "n,f2"')
                settings.keys[key] = (raw, where)
            continue
        for key, raw in body.items():
            if key not in TABLES[table]:
                hint = _did_you_mean(key, TABLES[table])
                raise ConfigError(
                    f"config {path}: unknown key [{table}] {key}{hint}; "
                    f"accepted: {', '.join(TABLES[table])}"
                )
            _set(settings, key, raw, f"config {path}: [{table}] {key}")


def load_settings(flags: dict | None = None, env=None, config_path=None) -> Settings:
    """Layer the sources. ``flags`` maps option keys to raw values the user gave (None: unset)."""
    env = os.environ if env is None else env
    settings = Settings()
    if config_path is not None:
        path, required = Path(config_path), True
    elif env.get("LIQTUI_CONFIG"):
        path, required = Path(env["LIQTUI_CONFIG"]), True
    else:
        path, required = default_config_path(env), False
    if required or path.is_file():
        _read_file(settings, path)
        settings.config_path = path
    for key, opt in OPTIONS.items():
        if env.get(opt.env, "") != "":  # an empty variable counts as unset, as shells use it
            _set(settings, key, env[opt.env], opt.env)
    for key, raw in (flags or {}).items():
        if raw is not None:
            _set(settings, key, raw, OPTIONS[key].flag)
    return settings
