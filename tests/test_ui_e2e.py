"""End to end: the *installed* ``liqtui --demo`` in a real terminal (tmux), driven with
``send-keys`` and read with ``capture-pane`` the way a person would see it.

Skipped only when tmux is absent outside CI; in CI (``CI=true``) it must run (``.ci/run``
installs tmux)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
if TMUX is None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise RuntimeError("CI=true but tmux is not installed: .ci/run installs it with apt-get")
    pytest.skip("tmux is not installed (CI installs it)", allow_module_level=True)


def _liqtui() -> str:
    exe = Path(sys.executable).with_name("liqtui")
    return str(exe) if exe.exists() else (shutil.which("liqtui") or "")


class Pane:
    def __init__(self, tmp: Path, cols=120, rows=40):
        self.sock = f"liqtui-e2e-{os.getpid()}"
        self.tmp = tmp
        self.cols, self.rows = cols, rows

    def tmux(self, *args, check=True):
        return subprocess.run([TMUX, "-L", self.sock, *args], capture_output=True, text=True,
                              check=check, timeout=10)

    def start(self, argv: list[str]):
        rc = self.tmp / "rc"
        env = {"TERM": "xterm-256color", "XDG_CONFIG_HOME": str(self.tmp / "config"),
               "XDG_CACHE_HOME": str(self.tmp / "cache"), "LANG": "C.UTF-8",
               "LC_ALL": "C.UTF-8"}
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        cmd = f"env -u COLUMNS -u LINES {exports} {' '.join(argv)}; echo $? > {rc}; sleep 30"
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "e2e", "-x", str(self.cols),
                  "-y", str(self.rows), cmd)
        self.tmux("set-option", "-t", "e2e", "escape-time", "10", check=False)
        self.tmux("set-option", "-t", "e2e", "window-size", "manual", check=False)
        self.tmux("resize-window", "-t", "e2e", "-x", str(self.cols), "-y", str(self.rows),
                  check=False)
        return rc

    def text(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "e2e").stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "e2e", *keys)

    def wait(self, cond, timeout=30.0, what=""):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            t = self.text()
            if cond(t):
                return t
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the pane shows:\n{self.text()}")

    def kill(self):
        self.tmux("kill-server", check=False)


def test_installed_liqtui_demo_in_tmux(tmp_path):
    exe = _liqtui()
    assert exe, "liqtui is not installed in this environment (pip install -e .)"
    pane = Pane(tmp_path)
    try:
        rc = pane.start([exe, "--demo", "--watchlist", "BTCUSDT,ETHUSDT", "--demo-days", "1",
                         "--range", "12h"])
        screen = pane.wait(lambda t: "DEMO" in t and "LIVE" in t and "long" in t,
                           what="the header with DEMO and LIVE and the levels list")
        lines = screen.splitlines()
        assert "BTCUSDT" in lines[0] and "DEMO" in lines[0]
        assert "price" in screen and "USD" in screen          # the levels list header
        assert "UTC" in screen                                  # the time axis
        assert any(ch in screen for ch in "▀▄█")                # heatmap cells
        assert "Quit" in lines[-1] or "Help" in lines[-1]       # the footer
        pane.keys("?")
        pane.wait(lambda t: "How this is estimated" in t and "next_asset" in t, what="help")
        pane.keys("Escape")
        pane.wait(lambda t: "How this is estimated" not in t, what="help closed")
        pane.keys("]")
        pane.wait(lambda t: "ETHUSDT" in t.splitlines()[0], what="ETHUSDT in the header")
        pane.keys("q")
        deadline = time.monotonic() + 10
        while not rc.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rc.exists(), f"q did not exit; the pane shows:\n{pane.text()}"
        assert rc.read_text().strip() == "0"
        after = pane.text()
        assert "Traceback" not in after
    finally:
        pane.kill()


def test_unreachable_venue_starts_the_app_and_shows_the_state(tmp_path):
    """The symbol cannot be checked when the venue cannot be reached: the app starts anyway
    and its header says what the feed is doing; q still exits cleanly."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pane = Pane(tmp_path, cols=100, rows=30)
    try:
        rc = pane.start([_liqtui(), "--symbol", "NOPEUSDT", "--rest-url",
                         f"http://127.0.0.1:{port}", "--ws-url", f"ws://127.0.0.1:{port}"])
        screen = pane.wait(lambda t: "NOPEUSDT" in t.splitlines()[0] and "ERROR" in t,
                           what="the header with the symbol and the error state")
        assert "Traceback" not in screen
        pane.keys("q")
        deadline = time.monotonic() + 10
        while not rc.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rc.exists() and rc.read_text().strip() == "0", pane.text()
    finally:
        pane.kill()


def test_a_crash_exits_non_zero_with_the_traceback(tmp_path):
    """The real CLI in a terminal, with a fault in the UI library (Textual's Static cannot draw;
    nothing of liqtui is replaced): Textual shows the traceback and the exit status is 1."""
    script = tmp_path / "crash.py"
    script.write_text(
        "import sys\n"
        "from textual.widgets import Static\n"
        "def render(self):\n"
        "    raise RuntimeError('Static cannot draw')\n"
        "Static.render = render\n"
        "from liqtui.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    pane = Pane(tmp_path, cols=100, rows=30)
    try:
        rc = pane.start([sys.executable, str(script), "--demo", "--demo-days", "1"])
        deadline = time.monotonic() + 30
        while not rc.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rc.exists(), f"the app did not stop; the pane shows:\n{pane.text()}"
        assert rc.read_text().strip() == "1"
        assert "Static cannot draw" in pane.text()
    finally:
        pane.kill()
