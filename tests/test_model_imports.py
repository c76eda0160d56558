"""liqtui.model is pure numpy: it must not import textual, aiohttp or asyncio."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import liqtui

FORBIDDEN = ("textual", "aiohttp", "asyncio")
MODEL_DIR = Path(liqtui.__file__).resolve().parent / "model"


def forbidden_imports(source, filename="<src>"):
    """(line, module) of every import statement or dynamic import naming a forbidden module."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call):
            f = node.func
            if (getattr(f, "id", None) == "__import__"
                    or (isinstance(f, ast.Attribute) and f.attr == "import_module")):
                names = [a.value for a in node.args[:1] if isinstance(a, ast.Constant)]
        found += [(node.lineno, n) for n in names if str(n).split(".")[0] in FORBIDDEN]
    return found


def test_importing_the_model_in_a_fresh_interpreter_pulls_in_none_of_them():
    code = (
        "import json, sys\n"
        "import liqtui.model\n"
        "from liqtui.model import build_heatmap, liquidation_price, Grid\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(MODEL_DIR.parent.parent))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_no_import_statement_in_the_model_names_them():
    files = sorted(MODEL_DIR.glob("*.py"))
    assert any(p.name == "__init__.py" for p in files), MODEL_DIR
    offenders = [(p.name, line, mod) for p in files
                 for line, mod in forbidden_imports(p.read_text(encoding="utf-8"), str(p))]
    assert not offenders, offenders


def test_the_static_scan_sees_offending_imports():
    src = ("import numpy as np\nfrom asyncio import sleep\nimport textual.app\n"
           "from . import grid\nimport importlib\nimportlib.import_module('aiohttp')\n")
    assert forbidden_imports(src) == [(2, "asyncio"), (3, "textual.app"), (6, "aiohttp")]
