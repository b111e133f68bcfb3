"""``lrpjax.train`` is :mod:`lrpjax.jobs.train` (the public path; the module itself, not a copy)."""

import sys

from lrpjax.jobs import train

sys.modules[__name__] = train
