"""The study's stage cache is keyed by the lrpjax package too: a change to a rule, composite or the engine
recomputes the stages that used it."""

import importlib
import sys

import lrpjax
from experiments.study import cache, run


def test_package_hash_follows_every_source_file_and_the_version(tmp_path, monkeypatch):
    package = tmp_path / "toy_lrp"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "1.0"\n')
    (package / "sub" / "rules.py").write_text("EPSILON = 1e-6\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = importlib.import_module("toy_lrp")
    before = cache.package_hash(toy)
    assert cache.package_hash(toy) == before and len(before) == 16
    (package / "sub" / "rules.py").write_text("EPSILON = 1e-9\n")  # a rule deep in the package changes
    after_rule = cache.package_hash(toy)
    toy.__version__ = "1.1"
    assert len({before, after_rule, cache.package_hash(toy)}) == 3
    sys.modules.pop("toy_lrp", None)


def test_model_and_statistics_stages_are_keyed_by_the_lrpjax_sources():
    lrpjax_code = cache.package_hash(lrpjax)
    assert run.MODEL_CODE.endswith(lrpjax_code) and run.STATISTICS_CODE.endswith(lrpjax_code)
