"""The command line: fast help, `levels` end to end, errors as one line and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import kline_lines, market, metrics_lines, write

from liqtui import __version__
from liqtui.cli import main

pytestmark = pytest.mark.usefixtures("isolated_env")

DOC_KEYS = {"schema", "symbol", "venues", "price", "as_of", "lookback", "bin_width", "levels", "totals"}
LEVEL_KEYS = {"price", "side", "usd", "distance_pct", "cumulative_usd", "tiers"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dumps")
    m = market(n=4 * 288, seed=7)
    k = write(d / "BTCUSDT-5m-2024-05-01.csv", kline_lines(m), as_zip=True)
    x = write(d / "BTCUSDT-metrics-2024-05-01.csv", metrics_lines(m), as_zip=True)
    return [str(k)], [str(x)], m


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def levels(files, *extra):
    k, x, _ = files
    return ("levels", "--klines", *k, "--metrics", *x, *extra)


def doc(capsys, files, *extra):
    rc, out, err = run(capsys, *levels(files, "--json", *extra))
    assert rc == 0, err
    return json.loads(out)


def one_line_error(rc, out, err):
    assert rc == 2 and out == ""
    assert err.startswith("liqtui: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# ---------------------------------------------------------------------------- help and version


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"liqtui {__version__}\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "levels" in out and "usage: liqtui" in out


def test_no_command_is_the_live_view(capsys):
    # the app itself is tested in tests/test_ui_app.py and tests/test_ui_e2e.py
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--demo" in out and "--colors" in out and "live heatmap" in out


def _commands(parser, prefix=()) -> list[tuple[str, ...]]:
    """Every command and nested command of ``parser`` (e.g. ("store", "info")), from the
    parser itself: a new command is checked without editing this test."""
    import argparse

    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [(*prefix, name), *_commands(sub, (*prefix, name))]
    return out


def test_help_and_version_import_nothing_heavy():
    from liqtui.cli import build_parser

    commands = _commands(build_parser())
    assert {"levels", "watch", "sim", "record", "replay", ("store", "info")} <= {
        c[0] if len(c) == 1 else c for c in commands}
    argvs = [["--help"], ["--version"], *([*c, "--help"] for c in commands)]
    code = (
        "import sys\n"
        "from liqtui.cli import main\n"
        f"for argv in {argvs!r}:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    print('HEAVY', argv, sorted(m for m in ('numpy', 'textual', 'aiohttp') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    heavy = [line for line in r.stdout.splitlines() if line.startswith("HEAVY ")]
    assert heavy == [f"HEAVY {argv} []" for argv in argvs]


def test_venue_urls_are_resolved_in_one_place(monkeypatch):
    """Flag (the chosen venue's only) > LIQTUI_<VENUE>_*_URL > the registry's default."""
    from argparse import Namespace

    from liqtui.cli.options import venue_urls
    from liqtui.feeds.venues import VENUES

    for v in VENUES.values():
        monkeypatch.delenv(v.env_rest, raising=False)
        monkeypatch.delenv(v.env_ws, raising=False)
    first, *others = VENUES
    for v in others:
        monkeypatch.setenv(VENUES[v].env_rest, "http://127.0.0.1:1")
    urls = venue_urls(Namespace(venue=first, rest_url="http://127.0.0.1:2/", ws_url=None), VENUES)
    assert urls[first] == ("http://127.0.0.1:2", VENUES[first].ws_url)
    assert all(urls[v] == ("http://127.0.0.1:1", VENUES[v].ws_url) for v in others)
    with pytest.raises(ValueError, match="--ws-url 'http://x'"):
        venue_urls(Namespace(venue=first, rest_url=None, ws_url="http://x"), [first])


def test_help_names_the_venues_of_the_registry(capsys):
    from liqtui.feeds.venues import VENUES

    with pytest.raises(SystemExit):
        main(["levels", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert f"VENUE = {', '.join(v.upper() for v in VENUES)};" in out
    assert all(v.label in out for v in VENUES.values() if not v.taker_in_candles)


def test_python_dash_m_runs_levels(files):
    r = subprocess.run(
        [sys.executable, "-m", "liqtui", *levels(files, "--json", "--top", "3")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["levels"]) == 3


# ---------------------------------------------------------------------------- levels --json


def test_json_document(capsys, files):
    _, _, m = files
    d = doc(capsys, files, "--top", "7")
    assert set(d) == DOC_KEYS
    assert d["schema"] == 1 and d["symbol"] == "BTCUSDT" and d["venues"] == ["binance"]
    assert d["price"] == round(m["close"][-1], 2)
    assert d["as_of"] == int(m["time"][-1]) + 300_000 == d["lookback"]["end"]
    assert d["lookback"]["start"] == int(m["time"][0])
    assert d["bin_width"] == 20.0  # the 1-2-5 width nearest 0.05 % of this walk's last close
    lv = d["levels"]
    assert 0 < len(lv) <= 7
    assert all(set(x) == LEVEL_KEYS for x in lv)
    assert [x["usd"] for x in lv] == sorted((x["usd"] for x in lv), reverse=True)
    for x in lv:
        assert x["side"] in ("long", "short")
        below = x["price"] < d["price"]
        assert below == (x["side"] == "long")  # longs are liquidated below the price, shorts above
        assert (x["distance_pct"] <= 0) == below
        assert x["distance_pct"] == pytest.approx((x["price"] / d["price"] - 1) * 100, abs=2e-3)
        assert x["cumulative_usd"] >= x["usd"] - 0.01
        assert set(x["tiers"]) == {"5x", "10x", "25x", "50x", "100x"}
        assert sum(x["tiers"].values()) == pytest.approx(x["usd"], abs=0.1)
    for side in ("long", "short"):
        listed = sum(x["usd"] for x in lv if x["side"] == side)
        assert d["totals"][f"{side}_usd"] >= listed - 0.01


def test_json_filters_and_model_flags(capsys, files):
    d = doc(capsys, files, "--tiers", "high", "--sides", "long", "--bin-width", "50")
    assert d["bin_width"] == 50.0
    assert {x["side"] for x in d["levels"]} == {"long"}
    assert all(set(x["tiers"]) == {"25x", "50x", "100x"} for x in d["levels"])
    assert d["totals"]["short_usd"] == 0
    base = doc(capsys, files)
    decayed = doc(capsys, files, "--half-life", "2h")
    assert decayed["totals"]["long_usd"] < base["totals"]["long_usd"]
    custom = doc(capsys, files, "--leverages", "10,20", "--weights", "0.5,0.5", "--tiers", "20")
    assert all(set(x["tiers"]) == {"20x"} for x in custom["levels"])


# ---------------------------------------------------------------------------- levels as text


def test_text_table(capsys, files):
    rc, out, err = run(capsys, *levels(files, "--top", "5", "--threshold", "0.5"))
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("BTCUSDT · Binance USDⓈ-M · price ")
    assert "as of 2024-05-05 00:00 UTC" in lines[0]
    assert "lookback 4d from 2024-05-01 00:00 UTC · bin 20 · tiers all" in lines[1]
    assert "full yellow $" in lines[2] and "(θ 0.5)" in lines[2]
    assert "not known positions" in out
    header = next(i for i, s in enumerate(lines) if s.lstrip().startswith("#"))
    rows = lines[header + 1: header + 6]
    assert all(r.split()[2] in ("LONG", "SHORT") for r in rows) and len(rows) == 5
    assert lines[header + 6] == ""
    assert "\x1b[" not in out  # not a terminal: no colour
    # the USD column is right-aligned: every row ends the column at the same place
    assert len({lines[header].index("usd") + 3} | {r.index("$") + len(r.split()[3]) for r in rows}) == 1


def test_colour_only_on_a_terminal_without_no_color(capsys, files, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("TERM", "xterm-256color")
    _, out, _ = run(capsys, *levels(files))
    assert "\x1b[31mLONG" in out or "\x1b[32mSHORT" in out
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("NO_COLOR", "1")
    _, out, _ = run(capsys, *levels(files))
    assert "\x1b[" not in out


def test_gap_warning_goes_to_stderr(capsys, tmp_path):
    m = market(n=600)
    rows = [*range(0, 300), *range(312, 600)]
    k = write(tmp_path / "BTCUSDT-5m-2024-05-01.csv", kline_lines(m, rows=rows))
    x = write(tmp_path / "BTCUSDT-metrics-2024-05-01.csv", metrics_lines(m))
    rc, out, err = run(capsys, "levels", "--klines", str(k), "--metrics", str(x), "--json")
    assert rc == 0 and json.loads(out)["levels"]
    assert "liqtui: warning: klines have a gap from 2024-05-02 01:00 UTC to 2024-05-02 02:00 UTC (1h" in err


# ---------------------------------------------------------------------------- settings layers


def test_config_env_flag_precedence(capsys, files, tmp_path, monkeypatch, isolated_env):
    cfg = isolated_env / "liqtui" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[model]\ntier_filter = "low"\nbin_width = 100\n')
    d = doc(capsys, files)
    assert d["bin_width"] == 100 and set(d["levels"][0]["tiers"]) == {"5x", "10x"}
    monkeypatch.setenv("LIQTUI_TIERS", "high")
    d = doc(capsys, files)
    assert d["bin_width"] == 100 and set(d["levels"][0]["tiers"]) == {"25x", "50x", "100x"}
    d = doc(capsys, files, "--tiers", "all")
    assert set(d["levels"][0]["tiers"]) == {"5x", "10x", "25x", "50x", "100x"}
    other = tmp_path / "other.toml"
    other.write_text("[model]\nbin_width = 200\n")
    assert doc(capsys, files, "--config", str(other))["bin_width"] == 200


def test_bad_config_value_exits_2_naming_the_key(capsys, files, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[model]\nbin_width = -5\n")
    err = one_line_error(*run(capsys, *levels(files, "--config", str(cfg))))
    assert "[model] bin_width is '-5', expected" in err


# ---------------------------------------------------------------------------- user mistakes


@pytest.mark.parametrize("flags, expect", [
    (["--threshold", "1.5"], "--threshold is '1.5', expected a number in (0, 1]"),
    (["--weights", "0.1,0.1,0.1,0.1,0.1"], "weights must be ≥ 0 and sum to 1"),
    (["--bin-width", "-5"], "--bin-width is '-5', expected auto or a positive width"),
    (["--bin-width", "0.01"], "--bin-width: bin width 0.01 needs"),
    (["--tiers", "7"], "tier filter names leverages that are not tiers: 7"),
    (["--half-life", "soon"], "--half-life is 'soon', expected off or a duration"),
])
def test_bad_flag_values(capsys, files, flags, expect):
    err = one_line_error(*run(capsys, *levels(files, *flags)))
    assert expect in err


def test_argparse_rejects_top_0(capsys, files):
    with pytest.raises(SystemExit) as e:
        main(list(levels(files, "--top", "0")))
    assert e.value.code == 2
    assert "--top: '0' is not accepted, expected an integer ≥ 1" in capsys.readouterr().err


def _bad_files(tmp_path, m):
    good_k, good_x = kline_lines(m, rows=range(20)), metrics_lines(m, rows=range(20))
    bad_high = good_k[7].split(",")
    bad_high[2] = "abc"
    cases = {
        "missing": ("nope.csv", None, "no such file"),
        "empty": ("BTCUSDT-5m-empty.csv", [""], "file is empty"),
        "columns": ("BTCUSDT-5m-cols.csv", [*good_k[:5], "1,2,3", *good_k[6:]], "line 6: 3 fields, expected 12"),
        "number": ("BTCUSDT-5m-2024-05-01.csv", [*good_k[:7], ",".join(bad_high), *good_k[8:]],
                   "line 8: field 3 (high) is 'abc', expected a number"),
        "zip": ("BTCUSDT-5m-broken.zip", b"PK\x03\x04garbage", "not a readable zip archive"),
        "metrics": ("BTCUSDT-metrics-bad.csv", [good_x[0], "2024-05-01 00:05:00,BTCUSDT,oops,1"],
                    "line 2: field 3 (sum_open_interest) is 'oops', expected a number"),
    }
    out = {}
    for case, (name, content, expect) in cases.items():
        p = tmp_path / name
        if isinstance(content, bytes):
            p.write_bytes(content)
        elif content is not None:
            p.write_text("\n".join(content) + "\n")
        out[case] = (p, expect)
    return out


@pytest.mark.parametrize("case", ["missing", "empty", "columns", "number", "zip", "metrics"])
def test_bad_input_files_exit_2_with_one_line(capsys, tmp_path, case):
    m = market(n=40)
    k = write(tmp_path / "BTCUSDT-5m-good.csv", kline_lines(m))
    x = write(tmp_path / "BTCUSDT-metrics-good.csv", metrics_lines(m))
    p, expect = _bad_files(tmp_path, m)[case]
    ks, xs = ([str(k)], [str(p)]) if case == "metrics" else ([str(p)], [str(x)])
    err = one_line_error(*run(capsys, "levels", "--klines", *ks, "--metrics", *xs))
    assert str(p) in err and expect in err


def test_no_overlap_exits_2(capsys, tmp_path):
    a, b = market(n=100), market(start=1717200000000, n=100)  # May and June
    k = write(tmp_path / "BTCUSDT-5m-2024-05-01.csv", kline_lines(a))
    x = write(tmp_path / "BTCUSDT-metrics-2024-06-01.csv", metrics_lines(b))
    err = one_line_error(*run(capsys, "levels", "--klines", str(k), "--metrics", str(x)))
    assert "do not overlap in time" in err


def test_a_real_process_prints_no_traceback(tmp_path):
    p = tmp_path / "BTCUSDT-5m-2024-05-01.zip"
    p.write_bytes(b"not a zip at all")
    r = subprocess.run(
        [sys.executable, "-m", "liqtui", "levels", "--klines", str(p), "--metrics", str(p)],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"liqtui: error: {p}: not a readable zip archive (File is not a zip file)\n"


# ---------------------------------------------------------------------------- the app: symbols


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory):
    """``liqtui sim`` in its own process: the venue the CLI asks."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}
    p = subprocess.Popen([sys.executable, "-m", "liqtui", "sim", "--symbols", "BTCUSDT,ETHUSDT",
                          "--history-days", "0.2"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        for line in p.stdout:
            if line.strip().startswith("REST"):
                url = line.split()[1].rsplit("/fapi", 1)[0]
            if "Ctrl-C" in line:
                break
        assert url, "liqtui sim did not print its URL"
        yield url
    finally:
        p.terminate()
        p.wait(10)


@pytest.mark.parametrize("symbol, expect", [
    ("NOPEUSDT", "--symbol: unknown symbol 'NOPEUSDT': not a trading USDⓈ-M perpetual"),
    ("ETHUSTD", "did you mean ETHUSDT?"),
])
def test_app_unknown_symbol_exits_2_before_the_ui(capsys, sim_url, symbol, expect):
    ws = sim_url.replace("http://", "ws://")
    rc, out, err = run(capsys, "--symbol", symbol, "--rest-url", sim_url, "--ws-url", ws)
    assert expect in one_line_error(rc, out, err)


def test_app_unknown_symbol_from_the_watchlist_exits_2(capsys, sim_url, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[ui]\nwatchlist = ["NOPEUSDT", "BTCUSDT"]\n')
    rc, out, err = run(capsys, "--config", str(cfg), "--rest-url", sim_url,
                       "--ws-url", sim_url.replace("http://", "ws://"))
    assert "[ui] watchlist entry: unknown symbol 'NOPEUSDT'" in one_line_error(rc, out, err)


def test_demo_unknown_symbol_exits_2(capsys):
    rc, out, err = run(capsys, "--demo", "--symbol", "NOPEUSDT")
    assert "--demo serves BNBUSDT, BTCUSDT" in one_line_error(rc, out, err)
    rc, out, err = run(capsys, "--demo", "--symbol", "ETHUSTD")
    assert "(did you mean ETHUSDT?)" in one_line_error(rc, out, err)


@pytest.mark.parametrize("spec,expect", [
    ("malformed_rate=3", "malformed_rate=3.0 is not accepted: expected a number from 0 to 1"),
    ("nope=1", "unknown fault 'nope'"),
    ("slow_ms=abc", "slow_ms='abc' is not accepted"),
])
def test_sim_faults_flag_names_bad_values(capsys, spec, expect):
    rc = main(["sim", "--faults", spec])
    out, err = capsys.readouterr()
    assert expect in one_line_error(rc, out, err)


def test_the_log_is_private_and_never_a_symbolic_link(capsys, tmp_path):
    """--log is created 0600 (what the feeds did is the trader's business), and a symbolic
    link is refused rather than followed to wherever it points (exit 2, the target
    untouched)."""
    log = tmp_path / "liqtui.log"
    # a --demo symbol the simulated exchange does not list: exit 2 after the log is opened
    rc = main(["--demo", "--symbol", "NOPEUSDT", "--log", str(log)])
    assert rc == 2 and log.exists()
    assert log.stat().st_mode & 0o777 == 0o600
    target, link = tmp_path / "elsewhere", tmp_path / "link.log"
    link.symlink_to(target)
    capsys.readouterr()
    rc = main(["--demo", "--log", str(link)])
    out, err = capsys.readouterr()
    assert "a symbolic link (not followed" in one_line_error(rc, out, err)
    assert not target.exists()


@pytest.mark.parametrize("case", ["not-utf8", "nested", "symbol-file", "sim-workers", "url"])
def test_hostile_input_is_a_message_naming_it_not_a_traceback(capsys, tmp_path, monkeypatch,
                                                              case):
    """Issue 12 item 11: each of these gave a traceback or a message that did not name the
    input (a config file that is not UTF-8 or is nested 10,000 deep, a binary symbol file,
    LIQTUI_SIM_WORKERS=abc, a URL with a control character)."""
    cfg = tmp_path / "config.toml"
    if case == "not-utf8":
        cfg.write_bytes(b'[ui]\nrange = "\xff\xfe"\n')
        argv, expect = ["levels", "--symbol", "BTCUSDT", "--config", str(cfg)], "not UTF-8"
    elif case == "nested":
        cfg.write_text("a = " + "[" * 10_000 + "]" * 10_000 + "\n")
        argv, expect = ["levels", "--symbol", "BTCUSDT", "--config", str(cfg)], "too deeply"
    elif case == "symbol-file":
        syms = tmp_path / "perps.txt"
        syms.write_bytes(bytes(range(128, 256)))
        argv, expect = ["record", "--symbol-file", str(syms)], f"{syms}: not a text file"
    elif case == "sim-workers":
        monkeypatch.setenv("LIQTUI_SIM_WORKERS", "abc")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        argv, expect = ["sim", "--fidelity"], "LIQTUI_SIM_WORKERS is 'abc'"
    else:
        argv = ["levels", "--symbol", "BTCUSDT", "--rest-url", "http://127.0.0.1\x01:80"]
        expect = "--rest-url 'http://127.0.0.1\\x01:80': control characters"
    rc = main(argv)
    out, err = capsys.readouterr()
    assert expect in one_line_error(rc, out, err)
