"""Training scripts of glae-st, run as modules from the repository root (``python -m training.train ...``).

- ``train.py``: trains a GLAE model from a YAML config in ``configs/``, with ``dry_run.py`` for a quick check on a CPU.
- ``data.py``, ``evaluators.py``, ``batching.py``, ``plots.py``: the datasets, evaluators, batch samplers and curves
  that ``train.py`` uses.
- ``select_on_dev.py``, ``speed.py``, ``padding.py``: scoring models on dev data, timing a training step, and the
  padding of each batch sampler.
"""
