"""Run every analysis after the model grid and write a Markdown report with figures.

    python experiments/run_study.py --profile smoke [--workdir DIR] [--grid DIR]   # CPU grid, out/study_smoke
    python experiments/run_study.py --profile full                                 # GPU, converted weights
    python experiments/run_study.py --profile planted   # known answers: trains out/grid_planted first if missing
    python experiments/run_study.py --config PATH.py[:ARG]                         # your own config

A second run loads the finished stages from the work directory and recomputes only what is missing or whose
inputs changed; the report (``WORKDIR/report.md``) and its figures are rewritten each time.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.known_answers import run_planted  # noqa: E402
from experiments.study import load_config, profile_path, run_study  # noqa: E402
from experiments.study.config import CONFIG_DIR  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--profile", choices=("smoke", "full", "planted"), help="experiments/configs/study_PROFILE.py")
    chosen.add_argument("--config", help="PATH.py or PATH.py:ARG (get_config(ARG))")
    parser.add_argument("--workdir", default=None, help="overrides the config's workdir")
    parser.add_argument("--grid", default=None, help="the model grid's work directory (overrides the config's)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config or profile_path(args.profile))
        if args.profile == "planted":
            if args.grid is not None:
                raise ValueError("--grid does not apply to --profile planted: it trains its own grid "
                                 f"({config['grid']}, the planted images included)")
            result = run_planted(config, grid_spec=os.path.join(CONFIG_DIR, "grid_planted.py"), workdir=args.workdir)
            print(result["table"])
        else:
            result = run_study(config, workdir=args.workdir, grid=args.grid)
    except (ValueError, FileNotFoundError) as error:
        print(f"run_study: error: {error}", file=sys.stderr)
        return 2
    print(f"{result['report']} ({result['seconds']:.0f} s; computed {len(result['computed'])} stage(s), loaded "
          f"{len(result['loaded'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
