"""``lrpjax.rules`` is :mod:`lrpjax.core.rules` (the public path; the module itself, not a copy)."""

import sys

from lrpjax.core import rules

sys.modules[__name__] = rules
