"""Benchmarks of glae-st, run as modules from the repository root (``python -m benchmarks.run_all ...``) and
importable for tests.

- ``run_mteb.py``: MTEB tasks (offline copies when the Hugging Face Hub is unreachable) for GLAE and baselines;
  ``local_tasks.py`` holds the offline tasks and ``mteb_models.py`` the models.
- ``decode_accuracy.py``: how faithfully embeddings decode back into held-out text, by text length.
- ``throughput.py``: encoding (and decoding) speed of GLAE against mean pooling and all-MiniLM-L6-v2.
- ``long_text.py``: long texts: memory, language modelling with a compressed context, long-document retrieval.
- ``inversion_audit.py``, ``scaling.py``, ``pareto.py``: what a translator recovers from other models' embeddings,
  encoding over several processes, and the loss-weight sweep's plot.
- ``run_all.py``: runs the benchmarks and writes ``benchmarks/RESULTS.md``.
"""
