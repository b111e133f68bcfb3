"""``lrpjax.composites`` is :mod:`lrpjax.core.composites` (the public path; the module itself, not a copy)."""

import sys

from lrpjax.core import composites

sys.modules[__name__] = composites
