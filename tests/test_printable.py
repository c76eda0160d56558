"""Text from outside (a venue's error, a file, an argument) never reaches the terminal or the
``--log`` file raw: control characters (ESC, BEL, C1, bidi overrides) become visible escapes at
every output boundary. The hostile venue is a real HTTP server on 127.0.0.1 whose every answer
is a Binance-like error carrying a screen clear and a window-title sequence."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
import threading

import pytest
from aiohttp import web

from liqtui.cli.options import LogFormatter
from liqtui.units import printable

HOSTILE = "bad \x1b[2J\x1b]0;pwned\x07 \x9b31m \u202egnp.exe"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_printable_escapes_controls_and_keeps_plain_text():
    assert printable("BTCUSDT · $1.23M → 5 %") == "BTCUSDT · $1.23M → 5 %"
    assert printable("\x1b[2J\x07\r\x7f") == r"\x1b[2J\x07\x0d\x7f"
    assert printable("a\x85b\x9bc") == r"a\x85b\x9bc"                  # C1
    assert printable("x\u202ey\u2066z\u2069") == r"x\u202ey\u2066z\u2069"  # bidi
    assert printable("one\n\ttwo") == "one\n\ttwo"                      # lines allowed
    assert printable("one\n\ttwo", lines=False) == r"one\x0a\x09two"
    once = printable(HOSTILE + "\n" + HOSTILE)
    assert printable(once) == once and printable(once, lines=False) != once  # idempotent
    assert not RAW.search(printable(HOSTILE, lines=False).replace("\n", ""))
    assert "pwned" in printable(HOSTILE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hostile():
    """A Binance-like REST and WebSocket base URL whose every request is answered with a 400
    JSON error whose ``msg`` carries control sequences."""
    async def answer(request):
        return web.json_response({"code": -1121, "msg": HOSTILE}, status=400)

    port = _free_port()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def _run(*argv, tmp_path, timeout=60):
    env = {**os.environ, "LIQTUI_DATA_DIR": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "liqtui", *argv], capture_output=True,
                       timeout=timeout, env=env)
    out = (r.stdout + r.stderr).decode("utf-8")
    assert not RAW.search(out), f"raw control characters reached the terminal: {out!r}"
    assert r"bad \x1b[2J\x1b]0;pwned\x07 \x9b31m \u202egnp.exe" in out, out  # still readable
    return r, out


def test_levels_prints_a_hostile_venue_error_escaped(hostile, tmp_path):
    rest, _ = hostile
    r, _ = _run("levels", "--symbol", "BTCUSDT", "--rest-url", rest, tmp_path=tmp_path)
    assert r.returncode != 0


def test_watch_prints_a_hostile_venue_error_escaped(hostile, tmp_path):
    rest, ws = hostile
    _run("watch", "--symbol", "BTCUSDT", "--rest-url", rest, "--ws-url", ws,
         "--duration", "3", tmp_path=tmp_path)


def test_record_prints_a_hostile_venue_error_escaped(hostile, tmp_path):
    rest, ws = hostile
    _run("record", "--symbols", "BTCUSDT", "--rest-url", rest, "--ws-url", ws,
         "--backfill", "1h", "--duration", "3", "--data-dir", str(tmp_path / "store"),
         tmp_path=tmp_path)


def test_an_argument_is_escaped_in_store_info(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    where = tmp_path / "store\x1b]0;pwned\x07\u202e"
    r = subprocess.run([sys.executable, "-m", "liqtui", "store", "info", "--data-dir", str(where)],
                       capture_output=True, timeout=60, env=env)
    out = (r.stdout + r.stderr).decode()
    assert not RAW.search(out), out
    assert r"store\x1b]0;pwned\x07\u202e" in out, out


def test_the_log_file_gets_no_control_characters(tmp_path):
    path = tmp_path / "liqtui.log"
    log = logging.getLogger("liqtui.test_printable")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(LogFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log.addHandler(handler)
    try:
        log.warning("binance: %s", HOSTILE + "\nforged line")
        try:
            raise ValueError(HOSTILE)
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
        handler.close()
    text = path.read_text("utf-8")
    assert not RAW.search(text), text
    assert r"\x1b]0;pwned\x07" in text
    assert text.splitlines()[0].endswith(r"\x0aforged line")  # one record, one line
    assert "Traceback (most recent call last):\n" in text      # a traceback keeps its lines


async def test_the_app_shows_a_hostile_venue_error_escaped(hostile):
    """The app against the hostile venue: its header, notifications, levels message and feed
    events show the venue's error with the escapes, and no control character is painted."""
    pytest.importorskip("textual")
    from helpers import header, pilot_until

    from liqtui.feeds.settings import FeedSettings
    from liqtui.ui.app import AppOptions, LiqApp
    from liqtui.ui.help import AssetPicker, FeedEventsScreen

    rest, ws = hostile
    app = LiqApp(AppOptions(rest_url=rest, ws_url=ws, watchlist=("BTCUSDT",),
                            feed_settings=FeedSettings(backoff_cap_s=0.5, backoff_base_s=0.2)))
    async with app.run_test(size=(160, 40)) as pilot:
        assert await pilot_until(pilot, lambda: "pwned" in header(app), timeout=15), header(app)
        app.notify("venue says: " + HOSTILE, title="t\x1b]0;x\x07")
        app.main.query_one("LevelsList").set_levels([], None, 2, message=HOSTILE)
        await pilot.pause(0.3)
        shown = [app.export_screenshot()]
        assert not RAW.search(shown[-1]), RAW.findall(shown[-1])
        assert r"\x1b[2J" in shown[0] and "pwned" in shown[0]
        await app.push_screen(FeedEventsScreen(app.session))
        await pilot.pause(0.3)
        shown.append(app.export_screenshot())
        assert not RAW.search(shown[-1]), RAW.findall(shown[-1])
        assert r"\x1b]0;pwned\x07" in shown[1]
        app.pop_screen()
        await app.push_screen(AssetPicker(["BTC\x1b[2JUSDT", "ETHUSDT"], []))
        await pilot.pause(0.3)
        shown.append(app.export_screenshot())
        assert not RAW.search(shown[-1]), RAW.findall(shown[-1])
        assert r"BTC\x1b[2JUSDT" in shown[2]


def test_an_unrecognised_argument_is_quoted_escaped(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "liqtui", "levels", "--symbol", "BTCUSDT",
                        "x\x1b]0;pwned\x07\u202e"], capture_output=True, timeout=60, env=env)
    err = r.stderr.decode()
    assert r.returncode == 2 and not RAW.search(err), err
    assert r"x\x1b]0;pwned\x07\u202e" in err, err
