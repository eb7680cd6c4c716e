"""The examples in the performance docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["estimation"])
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"loopwatch.performance.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
