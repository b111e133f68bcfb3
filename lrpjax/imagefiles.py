"""``lrpjax.imagefiles`` is :mod:`lrpjax.io.imagefiles` (the public path; the module itself, not a copy)."""

import sys

from lrpjax.io import imagefiles

sys.modules[__name__] = imagefiles
