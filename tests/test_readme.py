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
