"""``lrpjax.checkpoints`` is :mod:`lrpjax.io.checkpoints` (the public path; the module itself, not a copy)."""

import sys

from lrpjax.io import checkpoints

sys.modules[__name__] = checkpoints
