#!/usr/bin/env python3
"""Regenerate ``screenshots/``: the real ``liqtui --demo`` in tmux, captured as a terminal shows it.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--only main,help]

Each shot starts the installed ``liqtui --demo`` in its own tmux session of the given size,
waits until the header says LIVE, presses the shot's keys, captures the pane with colours
(``tmux capture-pane -e``, as ``../shared/tools/tmux-shot`` does) and writes a PNG when
``rsvg-convert`` (librsvg2-bin) is installed, else an SVG. Needs tmux. The simulated market uses a fixed
seed; its clock is the wall clock, so prices differ from run to run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from liqtui.feeds.venues import VENUES

ROOT = Path(__file__).resolve().parents[1]

# name, size, extra flags, environment, keys to press before the capture, title
SHOTS = [
    ("main", (120, 40), [], {"COLORTERM": "truecolor"}, [], "liqtui --demo (truecolor, 120×40)"),
    ("inspect", (120, 40), [], {"COLORTERM": "truecolor"}, ["Left"] * 6 + ["Up"] * 4,
     "inspect cursor (arrows)"),
    ("help", (120, 40), [], {"COLORTERM": "truecolor"}, ["?"], "help (?)"),
    ("main-256", (120, 40), ["--colors", "256"], {}, [], "256 colours (--colors 256)"),
    ("main-16", (120, 40), ["--colors", "16"], {}, [], "16 colours (--colors 16)"),
    ("small-80x24", (80, 24), ["--colors", "256"], {}, [], "80×24"),
    ("wide-200x60", (200, 60), [], {"COLORTERM": "truecolor"}, [], "200×60"),
    ("venues", (120, 40), ["--venue", "all"], {"COLORTERM": "truecolor"}, ["V"],
     "+".join(v.label for v in VENUES.values()) + " summed, levels by venue (--venue all, V)"),
]


def liqtui() -> str:
    exe = Path(sys.executable).with_name("liqtui")
    found = str(exe) if exe.exists() else shutil.which("liqtui")
    if not found:
        sys.exit("screenshots: liqtui is not installed (pip install -e .)")
    return found


class Tmux:
    def __init__(self, sock: str):
        self.sock = sock

    def __call__(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              check=check, timeout=15)


def capture_svg(tmux: Tmux, target: str, title: str) -> str:
    from rich.console import Console
    from rich.text import Text

    ansi = tmux("capture-pane", "-p", "-e", "-N", "-t", target).stdout
    # parsed as a whole: tmux emits only attribute changes, so a line's colours may have been
    # set on an earlier line (parsed line by line, those cells lose their background)
    lines = Text.from_ansi(ansi.rstrip("\n")).split("\n")
    width = max((line.cell_len for line in lines), default=80)
    console = Console(record=True, width=max(width, 20), file=open(os.devnull, "w"),
                      color_system="truecolor", force_terminal=True)
    for line in lines:
        console.print(line, no_wrap=True, overflow="crop", end="\n")
    # rsvg-convert drops the leading spaces of a text run unless told to keep them, which
    # moves what follows them (e.g. the liquidation map's price line) to the left
    return console.export_svg(title=title).replace("<svg ", '<svg xml:space="preserve" ', 1)


def shoot(name, size, flags, env, keys, title, out: Path, exe: str, cache: Path) -> Path:
    tmux = Tmux(f"liqtui-shots-{os.getpid()}-{name}")
    w, h = size
    base = {"TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "XDG_CACHE_HOME": str(cache), "XDG_CONFIG_HOME": str(cache / "config")}
    base.update(env)
    exports = " ".join(f"{k}={v}" for k, v in base.items())
    unset = "-u COLORTERM " if "COLORTERM" not in env else ""
    cmd = f"env -u COLUMNS -u LINES {unset}{exports} {exe} --demo {' '.join(flags)}; sleep 60"
    try:
        tmux("-f", os.devnull, "new-session", "-d", "-s", "shot", "-x", str(w), "-y", str(h), cmd)
        tmux("set-option", "-t", "shot", "escape-time", "10", check=False)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            text = tmux("capture-pane", "-p", "-t", "shot").stdout
            if "LIVE" in text.splitlines()[0] if text else False:
                break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"{name}: the app did not go LIVE:\n{text}")
        time.sleep(2.5)  # the liquidation map and a few live ticks
        for k in keys:
            tmux("send-keys", "-t", "shot", k)
            time.sleep(0.15)
        time.sleep(1.0)
        svg = capture_svg(tmux, "shot", title)
        tmux("send-keys", "-t", "shot", "q", check=False)
    finally:
        tmux("kill-server", check=False)
    path = out / f"{name}.svg"
    path.write_text(svg)
    if shutil.which("rsvg-convert"):
        png = out / f"{name}.png"
        subprocess.run(["rsvg-convert", "-o", str(png), str(path)], check=True)
        path.unlink()  # the PNG is what the README shows; keep the repository small
        return png
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "screenshots"), help="output directory")
    ap.add_argument("--only", default="", help="comma-separated shot names: "
                    + ", ".join(s[0] for s in SHOTS))
    args = ap.parse_args()
    if not shutil.which("tmux"):
        sys.exit("screenshots: needs tmux")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    exe = liqtui()
    cache = Path(tempfile.mkdtemp(prefix="liqtui-shots-"))
    # the sim cache is shared across shots: only the first builds the market
    for name, size, flags, env, keys, title in SHOTS:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        path = shoot(name, size, flags, env, keys, title, out, exe, cache)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  "
              f"({time.perf_counter() - t0:.1f} s)")
    shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
