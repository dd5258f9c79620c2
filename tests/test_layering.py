"""Layering: the alignment and loss layers import without Lightning; `import ctd` is light."""

import subprocess
import sys
import time

import pytest


@pytest.mark.parametrize("module", ["ctd.alignment", "ctd.losses"])
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


def test_import_ctd_is_light_and_fast() -> None:
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "import ctd\n"
        "elapsed = time.perf_counter() - t\n"
        "heavy = [m for m in ('lightning', 'transformers', 'torch') if m in sys.modules]\n"
        "print(elapsed, ','.join(heavy))\n"
    )
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    elapsed_text, heavy = result.stdout.split()[0], result.stdout.split()[1:]
    assert heavy == [], f"import ctd pulled in {heavy}"
    assert float(elapsed_text) < 1.5
    assert time.perf_counter() - start < 30
