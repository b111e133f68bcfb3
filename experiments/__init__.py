"""Experiment configs and scripts (the model grid); the logic is in :mod:`experiments.grid` and lrpjax."""
