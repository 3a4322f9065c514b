"""The README's Python examples run, against the corpus, and print what they say."""

import doctest
import os

from corpus import REPO_ROOT, corpus_root


def test_readme_examples_run():
    root = corpus_root()
    if root is None:
        import pytest

        pytest.skip("test corpus not found")
    os.environ.setdefault("BUGCHECK_CORPUS", str(root))
    failures, tried = doctest.testfile(str(REPO_ROOT / "README.md"), module_relative=False)
    assert tried > 5 and failures == 0
