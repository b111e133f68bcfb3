"""Doctests are collected where each module lives, not again under its public path (``lrpjax/rules.py`` is
``lrpjax.core.rules``; pytest would refuse the second import of one file under two names)."""

from lrpjax import PUBLIC_PATHS

collect_ignore = [f"lrpjax/{name}.py" for name in PUBLIC_PATHS]
