"""The study after the model grid: relevance maps of every model, masking, cross-model generalization, map
similarity, face regions, human similarity, figures and a Markdown report (see :mod:`experiments.study.run`).

    python experiments/run_study.py --profile smoke     # CPU grid, tens of minutes on 2 cores (controls, MPRT)
    python experiments/run_study.py --profile full      # the study's grid, on a GPU
"""

from experiments.study.config import check_config, load_config, profile_path
from experiments.study.run import run_study

__all__ = ["check_config", "load_config", "profile_path", "run_study"]
