"""``lrpjax.viz`` is :mod:`lrpjax.io.viz` (the public path; the module itself, not a copy)."""

import sys

from lrpjax.io import viz

sys.modules[__name__] = viz
