"""A bounded atheris (libFuzzer) run over the frame reader, from the committed seed corpus."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris wheels exist for Linux x86_64 only")

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"


def test_the_frame_reader_survives_coverage_guided_fuzzing(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "corpus", corpus)  # libFuzzer adds what it finds; keep the repo clean
    result = subprocess.run([sys.executable, str(FUZZ / "frames.py"), str(corpus), "-runs=30000",
                             "-max_len=70000", f"-artifact_prefix={tmp_path}/"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 30000 runs" in result.stderr
