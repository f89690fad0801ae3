"""Benchmarks of glae-st, runnable as scripts from the repository root and importable for tests.

- ``run_mteb.py``: MTEB tasks (offline copies when the Hugging Face Hub is unreachable) for GLAE and baselines.
- ``decode_accuracy.py``: how faithfully embeddings decode back into held-out text, by text length.
- ``throughput.py``: encoding speed of GLAE (with and without prefix caching) against mean pooling.
- ``run_all.py``: runs the three and writes ``benchmarks/RESULTS.md``.
"""
