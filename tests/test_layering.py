"""Layering: the alignment and loss layers import without Lightning; `import ctd` is light.

How long `import ctd` takes is a benchmark (tests/benchmarks/test_import_bench.py), not a test.
"""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["ctd.alignment", "ctd.losses", "ctd.decoding", "ctd.specdec"])
def test_lower_layers_import_without_lightning(module: str) -> None:
    code = (
        "import sys\n"
        "sys.modules['lightning'] = None\n"
        "sys.modules['pytorch_lightning'] = None\n"
        f"import {module}\n"
        f"import pkgutil, importlib\n"
        f"pkg = importlib.import_module('{module}')\n"
        "for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


HEAVY = ("torch", "transformers", "lightning", "pytorch_lightning")


def test_import_ctd_pulls_in_only_the_standard_library() -> None:
    """`import ctd` adds ctd itself and standard-library modules to sys.modules, nothing else."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import ctd\n"
        "added = set(sys.modules) - before\n"
        "top = {m.split('.')[0] for m in added}\n"
        "print(','.join(sorted(top - {'ctd'} - set(sys.stdlib_module_names))))\n"
        "print(','.join(sorted(top & set(sys.argv[1:]))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    foreign, heavy = result.stdout.split("\n")[:2]  # top-level package names
    assert heavy == "", f"import ctd pulled in {heavy}"
    assert foreign == "", f"import ctd pulled in non-stdlib modules {foreign}"


def test_import_ctd_works_with_heavy_packages_blocked() -> None:
    """`import ctd` succeeds with torch, transformers and Lightning made unimportable."""
    blocked = "".join(f"sys.modules[{name!r}] = None\n" for name in HEAVY)
    code = f"import sys\n{blocked}import ctd\nprint(ctd.__version__)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
