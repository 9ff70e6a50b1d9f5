"""Source-level rules: no pickle, eval or exec anywhere in what we ship."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["src", "plugins", "client", "examples"]
FORBIDDEN = re.compile(r"\b(import\s+pickle|from\s+pickle|pickle\.|cPickle|marshal\.loads|shelve\.|(?<![.\w])eval\(|(?<![.\w])exec\()")


def shipped_python_files() -> list[Path]:
    return [path for folder in SHIPPED if (ROOT / folder).is_dir()
            for path in (ROOT / folder).rglob("*.py") if "/tests/" not in path.as_posix()]


def test_no_pickle_eval_or_exec_in_shipped_code():
    files = shipped_python_files()
    assert len(files) > 10
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in files
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if FORBIDDEN.search(line)]
    assert offenders == []


def test_the_pattern_catches_what_it_should():
    for bad in ["import pickle", "data = pickle.loads(x)", "eval(text)", "exec(code)", "from pickle import loads"]:
        assert FORBIDDEN.search(bad), bad
    for fine in ["self.evaluate(x)", "literal_eval", "executor.submit(f)", "# no pickle here"]:
        assert not FORBIDDEN.search(fine), fine
