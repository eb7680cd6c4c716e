"""The examples in the screens' docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["label_flips", "reference_distance", "sources", "backdoor"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"loopwatch.poisoning.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result


def test_the_screen_names_are_the_modules_names() -> None:
    from loopwatch.poisoning.compose import POISONING_SCREENS

    assert POISONING_SCREENS == tuple(importlib.import_module(f"loopwatch.poisoning.{m}").NAME
                                      for m in ("label_flips", "reference_distance", "sources", "backdoor"))
