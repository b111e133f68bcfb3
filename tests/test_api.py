"""Every exported name imports; the package does not import torch; the layout's parts and public paths hold."""

import ast
import pathlib
import subprocess
import sys

import lrpjax

PACKAGE = pathlib.Path(lrpjax.__file__).parent
PARTS = ("core", "io", "analysis", "jobs")
"""The parts in import order: a module may import only from its own part and the parts before it (data sits
beside io)."""


def test_every_exported_name_exists():
    for name in lrpjax.__all__:
        assert getattr(lrpjax, name) is not None, name
    assert lrpjax.__version__


def test_importing_lrpjax_does_not_import_torch():
    code = "import sys, lrpjax, lrpjax.core.engine, lrpjax.core.composites; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_paths_are_the_modules_themselves_in_a_fresh_interpreter():
    """``from lrpjax.rules import ...``, ``import lrpjax.checkpoints`` and ``lrpjax.train`` give the module that
    lives in core/io/jobs (one module object: classes compare equal whichever path imported them)."""
    code = ("import importlib, sys, lrpjax\n"
            "from lrpjax.rules import Epsilon\n"
            "from lrpjax.core.rules import Epsilon as Same\n"
            "assert Epsilon is Same\n"
            "for name in lrpjax.PUBLIC_PATHS:\n"
            "    short = importlib.import_module('lrpjax.' + name)\n"
            "    assert getattr(lrpjax, name) is short, name\n"
            "    assert short.__name__.count('.') == 2 and short.__name__.endswith('.' + name), short.__name__\n"
            "    assert sys.modules[short.__name__] is short\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_the_package_top_holds_only_its_parts_and_public_paths():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert top == set(lrpjax.PUBLIC_PATHS)
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(PARTS) | {"data"}


def _lrpjax_imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lrpjax"):
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("lrpjax")}
    return names


def test_each_part_imports_only_the_parts_before_it():
    order = {part: rank for rank, part in enumerate(PARTS)}
    order["data"] = order["io"]
    broken = []
    for part, rank in order.items():
        for path in (PACKAGE / part).rglob("*.py"):
            for name in _lrpjax_imports(path):
                other = name.split(".")[1] if name.count(".") else None
                if other in order and order[other] > rank:
                    broken.append(f"{path.relative_to(PACKAGE)} imports {name}")
                if other in lrpjax.PUBLIC_PATHS:  # inside the package, modules are imported from where they live
                    broken.append(f"{path.relative_to(PACKAGE)} imports the public path {name}")
    assert not broken, broken


def test_python_dash_m_lrpjax_is_the_command():
    out = subprocess.run([sys.executable, "-m", "lrpjax", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "explain" in out.stdout, out.stderr
