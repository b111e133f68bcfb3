"""Train the model grid of a config and write its table of test accuracies.

    python experiments/run_grid.py --config experiments/configs/grid_cpu.py [--workdir DIR]
    python experiments/run_grid.py --config experiments/configs/grid_cpu.py:smoke --workdir /tmp/grid

Each model is trained once: a second run skips finished models and resumes interrupted ones, then rewrites
``WORKDIR/results.md`` and ``results.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.grid import load_config, run_grid  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="PATH.py or PATH.py:ARG (get_config(ARG))")
    parser.add_argument("--workdir", default=None, help="overrides the config's workdir")
    args = parser.parse_args(argv)
    try:
        result = run_grid(load_config(args.config), args.workdir)
    except (ValueError, FileNotFoundError) as error:
        print(f"run_grid: error: {error}", file=sys.stderr)
        return 2
    print(result["table"])
    print(f"trained {len(result['trained'])} model(s), skipped {len(result['skipped'])} finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
