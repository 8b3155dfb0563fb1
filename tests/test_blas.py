"""The Linux fast path: a script that calls ensure_fast_blas() comes back with the system OpenBLAS mapped."""

import platform
import subprocess
import sys

import pytest

from dora_funasr_nano.model_core.common import blas

SCRIPT = """
import sys
from dora_funasr_nano.model_core.common.blas import ensure_fast_blas, openblas_loaded
import numpy  # numpy's own OpenBLAS must not be mistaken for the one MLX uses
ensure_fast_blas()
print(openblas_loaded(), sys.argv[1:])
"""


@pytest.mark.skipif(platform.system() != "Linux" or blas.find_openblas() is None, reason="needs Linux + OpenBLAS")
def test_script_is_reexecuted_with_openblas(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script), "x", "--y"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True ['x', '--y']", out.stderr
    env_off = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env={"DFN_BLAS": "off", "PATH": ""}
    )
    assert env_off.stdout.strip() == "False []"
