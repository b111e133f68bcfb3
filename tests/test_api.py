"""Every exported name imports; the package does not import torch."""

import subprocess
import sys

import lrpjax


def test_every_exported_name_exists():
    for name in lrpjax.__all__:
        assert getattr(lrpjax, name) is not None, name
    assert lrpjax.__version__


def test_importing_lrpjax_does_not_import_torch():
    code = "import sys, lrpjax, lrpjax.engine, lrpjax.composites; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
