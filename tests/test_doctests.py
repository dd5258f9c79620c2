"""Every docstring example in ``ctd/`` runs and shows what it prints (executed doctests).

The modules are found by a text scan for ``>>>``, so only those with examples are imported and a
new example is collected without registering it anywhere.
"""

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ctd"


def modules_with_examples() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


MODULES = modules_with_examples()


def test_the_main_losses_have_examples() -> None:
    assert {"ctd.losses.alm", "ctd.losses.kl", "ctd.losses.tvdpp"} <= set(MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=True, verbose=False)
    assert result.attempted > 0, f"{module_name} has '>>>' but no example doctest can find"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (see stdout)"
