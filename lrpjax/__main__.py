"""``python -m lrpjax`` is the ``lrpjax`` command."""

from lrpjax.jobs.cli import main

raise SystemExit(main())
