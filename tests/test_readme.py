"""The README's examples run as written."""

import pathlib
import re

import jax.numpy as jnp

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_ten_line_example_and_custom_rule_run():
    blocks = python_blocks()
    assert len(blocks) >= 2
    namespace = {}
    exec(compile(blocks[0], "README example", "exec"), namespace)
    assert namespace["relevance"].shape == (4, 224, 224, 3)
    assert namespace["heatmaps"].shape == (4, 224, 224)
    assert len(namespace["out"].relevance) == 2 and "conv1_1" in namespace["out"].layers[0]
    exec(compile(blocks[1], "README custom rule", "exec"), namespace)
    import lrpjax

    mine = lrpjax.explain(namespace["model"], namespace["variables"], namespace["images"], [0, 1, 2, 3],
                          namespace["composite"])
    builtin = lrpjax.explain(namespace["model"], namespace["variables"], namespace["images"], [0, 1, 2, 3],
                             lrpjax.Composite("zplus", by_kind=(("linear", lrpjax.rules.ZPlus()),)))
    assert float(jnp.abs(mine - builtin).max()) <= 1e-5 * float(jnp.abs(builtin).max())


def test_every_lrpjax_name_the_readme_uses_resolves_after_a_plain_import():
    """``import lrpjax`` then ``lrpjax.checkpoints.load`` etc.: every dotted name in the README, in a fresh
    interpreter (other tests import the submodules, which would hide a missing attribute)."""
    import subprocess
    import sys

    names = sorted(set(re.findall(r"\blrpjax(?:\.[A-Za-z_][A-Za-z0-9_]*)+", README.read_text())))
    assert {"lrpjax.checkpoints.load", "lrpjax.preprocess.preprocess", "lrpjax.data.prepare_folder"} <= set(names)
    script = ("import lrpjax, sys\nmissing = []\nfor name in sys.argv[1:]:\n    obj = lrpjax\n"
              "    try:\n        for part in name.split('.')[1:]:\n            obj = getattr(obj, part)\n"
              "    except AttributeError:\n        missing.append(name)\nprint(missing)\n")
    result = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=120,
                            cwd=README.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
