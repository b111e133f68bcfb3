"""``lrpjax.preprocess`` is :mod:`lrpjax.io.preprocess` (the public path; the module itself, not a copy)."""

import sys

from lrpjax.io import preprocess

sys.modules[__name__] = preprocess
