"""Every exported name imports; the package does not import torch."""

import os
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


def test_importing_lrpjax_switches_ynn_fusion_off_unless_told_not_to():
    code = "import os, lrpjax; print(os.environ.get('XLA_FLAGS', ''))"
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "LRPJAX_KEEP_XLA_FLAGS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "--xla_cpu_experimental_ynn_fusion_type="
    flags = "--xla_force_host_platform_device_count=1"
    kept = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**env, "LRPJAX_KEEP_XLA_FLAGS": "1", "XLA_FLAGS": flags})
    assert kept.stdout.strip() == "--xla_force_host_platform_device_count=1"
