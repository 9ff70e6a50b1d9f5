"""Only plugin.py knows about pluggy: the logic modules stay plain Python."""

from __future__ import annotations

from pathlib import Path

import chatcore_auth


def test_logic_modules_do_not_import_pluggy_or_hookimpl():
    package = Path(chatcore_auth.__file__).parent
    offenders = [p.name for p in package.glob("*.py")
                 if p.name != "plugin.py" and ("pluggy" in p.read_text() or "hookimpl" in p.read_text())]
    assert offenders == []
