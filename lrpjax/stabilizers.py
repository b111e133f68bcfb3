"""``lrpjax.stabilizers`` is :mod:`lrpjax.core.stabilizers` (the public path; the module itself, not a copy)."""

import sys

from lrpjax.core import stabilizers

sys.modules[__name__] = stabilizers
