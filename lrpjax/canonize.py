"""``lrpjax.canonize`` is :mod:`lrpjax.core.canonize` (the public path; the module itself, not a copy)."""

import sys

from lrpjax.core import canonize

sys.modules[__name__] = canonize
