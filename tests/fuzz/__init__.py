"""Helpers for the end-to-end robustness tests (tests/test_robust_*.py).

``mutate`` makes seeded, replayable damage recipes for dumps, PDBs and PE images;
``runner`` runs the real console script on the damaged copies under a time and
memory bound and says what went wrong, if anything.
"""
