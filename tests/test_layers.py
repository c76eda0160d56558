"""Imports flow one way (ARCHITECTURE.md): the session has no Textual; the UI and the headless
front ends (watch, record) reach the layers below only through the session, the model and
the formatting helpers."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import liqtui

PKG = Path(liqtui.__file__).resolve().parent
# what a front end may import of liqtui: the session, the model, units and formatting
FRONT_END_ALLOWED = ("liqtui.session", "liqtui.model", "liqtui.units", "liqtui.report")


def liqtui_imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of a liqtui module in ``path``, relative
    imports resolved; imports inside the file's own package are left out."""
    package = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(PKG.parent).parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        mods = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                mods = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            elif node.module:
                mods = [node.module]
        found += [(node.lineno, m) for m in mods
                  if m.split(".")[0] == "liqtui" and not m.startswith(package + ".")
                  and m != package]
    return found


def offenders(files, allowed) -> list:
    return [(p.name, line, m) for p in files for line, m in liqtui_imports(p)
            if not any(m == a or m.startswith(a + ".") for a in allowed)]


def test_the_ui_imports_only_the_session_the_model_and_formatting():
    files = sorted((PKG / "ui").glob("*.py"))
    assert len(files) > 5
    assert offenders(files, FRONT_END_ALLOWED) == []


def test_watch_and_record_are_front_ends_of_the_session():
    assert offenders([PKG / "watch.py", PKG / "record.py"], FRONT_END_ALLOWED) == []


def test_the_scan_resolves_relative_imports():
    ui = PKG / "ui" / "app.py"
    got = dict((m, line) for line, m in liqtui_imports(ui))
    assert "liqtui.session" in got and not any(m.startswith("liqtui.ui") for m in got)
    assert offenders([ui], ("liqtui.model",))  # the session is not the model: it is caught


def test_the_session_imports_no_textual():
    files = sorted((PKG / "session").glob("*.py"))
    bad = [(p.name, m) for p in files for m in ast.walk(ast.parse(p.read_text()))
           if isinstance(m, (ast.Import, ast.ImportFrom))
           and any(n.split(".")[0] == "textual" for n in
                   ([a.name for a in m.names] if isinstance(m, ast.Import) else [m.module or ""]))]
    assert bad == []
    code = ("import json, sys\n"
            "import liqtui.session as s\n"
            "[getattr(s, n) for n in s.__all__]\n"
            "import liqtui.session.capture, liqtui.session.store, liqtui.watch, liqtui.record\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'textual')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
