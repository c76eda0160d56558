"""Settings: defaults < config file < LIQTUI_* environment < flags, and clear errors."""

from __future__ import annotations

import pytest

from liqtui.config import ConfigError, load_settings, parse_duration

pytestmark = pytest.mark.usefixtures("isolated_env")


def toml(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_nothing_set_gives_the_model_defaults(isolated_env):
    from liqtui.model import ModelParams

    s = load_settings(env={"XDG_CONFIG_HOME": str(isolated_env)})
    assert s.values == {} and s.config_path is None
    assert s.threshold == 0.85
    assert s.model_params() == ModelParams()


def test_file_then_env_then_flag(tmp_path, isolated_env):
    toml(isolated_env / "liqtui" / "config.toml", """
[model]
bin_width = 100
tier_filter = "high"
side_filter = "long"
half_life = "12h"
[colour]
threshold = 0.5
""")
    env = {"XDG_CONFIG_HOME": str(isolated_env), "LIQTUI_BIN_WIDTH": "50", "LIQTUI_TIERS": "low"}
    s = load_settings({"bin_width": "20", "threshold": None}, env=env)
    assert s.values["bin_width"] == 20 and s.sources["bin_width"] == "--bin-width"
    assert s.values["tier_filter"] == "low" and s.sources["tier_filter"] == "LIQTUI_TIERS"
    assert s.values["side_filter"] == "long" and "[model] side_filter" in s.sources["side_filter"]
    assert s.threshold == 0.5
    kw = s.model_kwargs()
    assert kw["half_life_ms"] == 12 * 3_600_000 and "half_life" not in kw
    assert load_settings(env={**env, "LIQTUI_BIN_WIDTH": ""}).values["bin_width"] == 100  # empty = unset


def test_config_path_from_flag_and_env(tmp_path):
    a = toml(tmp_path / "a.toml", "[model]\nalpha = 0.5\n")
    b = toml(tmp_path / "b.toml", "[model]\nalpha = 0.25\n")
    assert load_settings(env={"LIQTUI_CONFIG": str(b)}).values["alpha"] == 0.25
    assert load_settings(env={"LIQTUI_CONFIG": str(b)}, config_path=a).values["alpha"] == 0.5
    with pytest.raises(ConfigError, match="nope.toml: no such file"):
        load_settings(env={}, config_path=tmp_path / "nope.toml")


@pytest.mark.parametrize("raw, value", [
    ("5,10,25", (5.0, 10.0, 25.0)), ([5, 10, 25], (5.0, 10.0, 25.0)), (" 2, 4 ", (2.0, 4.0)),
])
def test_number_lists_from_strings_or_arrays(raw, value):
    assert load_settings({"leverages": raw}, env={}).values["leverages"] == value


@pytest.mark.parametrize("key, raw, value", [
    ("tier_filter", "HIGH", "high"),
    ("tier_filter", "25,50,100", (25.0, 50.0, 100.0)),
    ("tier_filter", "25x,50X", (25.0, 50.0)),
    ("leverages", ["5x", 10], (5.0, 10.0)),
    ("bin_width", "auto", None),
    ("bin_width", "0.05", 0.05),
    ("entry_spread", "yes", True),
    ("both_sides", False, False),
    ("seed", "0", False),
    ("half_life", "1h30m", 5_400_000),
    ("half_life", "off", None),
    ("threshold", "1", 1.0),
])
def test_values(key, raw, value):
    assert load_settings({key: raw}, env={}).values[key] == value


def test_durations():
    assert parse_duration("30m") == 1_800_000 and parse_duration("2d") == 172_800_000
    for bad in ("", "12", "12x", "h", "0m", "-1h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize("key, raw, expect", [
    ("bin_width", "-5", "--bin-width is '-5', expected auto or a positive width in the 1-2-5 series"),
    ("bin_width", "30", "--bin-width is '30', expected auto or a positive width in the 1-2-5"),
    ("threshold", "1.5", "--threshold is '1.5', expected a number in (0, 1]"),
    ("threshold", "0", "--threshold is '0', expected a number in (0, 1]"),
    ("alpha", "2", "--alpha is '2', expected a number in [0, 1]"),
    ("tier_filter", "hihg", "--tiers is 'hihg', expected all, high (≥ 25x), low (≤ 10x) or a list"),
    ("side_filter", "up", "--sides is 'up', expected both, long or short"),
    ("half_life", "12x", "--half-life is '12x', expected off or a duration such as 30m, 12h, 2d"),
    ("leverages", "5,0.5", "--leverages is '5,0.5', expected a list of distinct leverages ≥ 1"),
    ("weights", "a,b", "--weights is 'a,b', expected a list of weights ≥ 0"),
    ("seed", "maybe", "--seed is 'maybe', expected true or false"),
])
def test_bad_flag_values_name_the_flag_value_and_what_is_accepted(key, raw, expect):
    with pytest.raises(ConfigError) as e:
        load_settings({key: raw}, env={})
    assert str(e.value).startswith(expect)


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match=r"^LIQTUI_TIERS is 'mid', expected all"):
        load_settings(env={"LIQTUI_TIERS": "mid"})


@pytest.mark.parametrize("text, expect", [
    ("[model]\nbin_width = -5\n", "[model] bin_width is '-5', expected auto or a positive width"),
    ("[model]\nhalf_life = 12\n", "[model] half_life is '12', expected off or a duration"),
    ("[model]\nseed = \"perhaps\"\n", "[model] seed is 'perhaps', expected true or false"),
    ("[model]\nleverages = [5, true]\n", "[model] leverages is '[5, true]', expected a list"),
    ("[model]\nbin_widht = 50\n", "unknown key [model] bin_widht (did you mean bin_width?); accepted: leverages,"),
    ("[colour]\nthreshhold = 0.5\n", "unknown key [colour] threshhold (did you mean threshold?)"),
    ("[color]\nthreshold = 0.5\n", "unknown table [color] (did you mean colour?); accepted tables: [model], [colour]"),
    ("threshold = 0.5\n", "unknown key 'threshold' outside a table"),
    ("[model\n", "not valid TOML"),
])
def test_bad_config_file(tmp_path, text, expect):
    p = toml(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as e:
        load_settings(env={}, config_path=p)
    msg = str(e.value)
    assert msg.startswith(f"config {p}") and expect in msg and "\n" not in msg


def test_cross_field_mistakes_name_where_the_settings_came_from(tmp_path):
    p = toml(tmp_path / "config.toml", "[model]\nleverages = [10, 20]\n")
    s = load_settings({"weights": "0.5,0.4"}, env={}, config_path=p)
    with pytest.raises(ConfigError) as e:
        s.model_params()
    msg = str(e.value)
    assert "weights must be ≥ 0 and sum to 1" in msg
    assert "weights from --weights" in msg and f"leverages from config {p}" in msg
    with pytest.raises(ConfigError, match="not tiers: 3"):
        load_settings({"tier_filter": "3"}, env={}).model_params()


def test_feed_timers_from_file_env_and_flag(tmp_path, isolated_env):
    from liqtui.feeds.settings import FeedSettings

    path = toml(tmp_path / "c.toml", '[feeds]\nstale_timeout = "45s"\noi_poll = "10s"\n'
                                     'reconnect_after = "23h"\n')
    s = load_settings({"oi_poll": "2s"}, env={"LIQTUI_BACKOFF_CAP": "1m"}, config_path=path)
    fs = s.feed_settings()
    assert isinstance(fs, FeedSettings)
    assert (fs.stale_timeout_s, fs.oi_poll_s, fs.backoff_cap_s) == (45.0, 2.0, 60.0)
    assert fs.max_connection_age_s == 23 * 3600
    assert s.sources["oi_poll"] == "--oi-poll"
    # unset timers keep the venue-tuned defaults
    assert fs.rest_timeout_s == FeedSettings().rest_timeout_s
    # a cap below the default first delay lowers the first delay instead of failing
    low = load_settings({"backoff_cap": "500ms"}, env={}).feed_settings()
    assert low.backoff_cap_s == 0.5 and low.backoff_base_s == 0.5


@pytest.mark.parametrize("text", ['[feeds]\nstale_timeout = 30\n', '[feeds]\noi_poll = "soon"\n',
                                  '[feeds]\nstale = "30s"\n'])
def test_bad_feed_timers_are_named(tmp_path, isolated_env, text):
    path = toml(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=r"\[feeds\]"):
        load_settings({}, env={}, config_path=path)
