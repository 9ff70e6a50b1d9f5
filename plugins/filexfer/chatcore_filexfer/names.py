"""Display names for files: whatever a client sends becomes a harmless label, never a path.

The spool never uses these names (it stores files under server-generated ids); they are
cleaned anyway because receiving clients may save a file under the name they are shown.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 255  # the common file-name limit (ext4, NTFS, APFS), counted in UTF-8
FALLBACK_NAME = "file"

# Windows device names, reserved with any extension ("CON.txt" opens the console too).
_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
             *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10)),
             "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"}
_FORBIDDEN = re.compile(r'[<>:"|?*]')


def _drop_invisible(text: str) -> str:
    """Remove control and format characters (NUL, newlines, bidi overrides, zero-width)."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))


def _cap_utf8(name: str, limit: int) -> str:
    """Shorten ``name`` to ``limit`` UTF-8 bytes, keeping a short extension when there is one."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot and stem and 0 < len(ext.encode("utf-8")) <= 16 else ""
    body = name[: len(name) - len(suffix)]
    room = limit - len(suffix.encode("utf-8"))
    cut = body.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .")
    return (cut or FALLBACK_NAME) + suffix


def sanitize_filename(raw: str) -> str:
    """A safe display name for ``raw``: last path component only, no control characters,
    no characters Windows forbids, no reserved device names, at most 255 UTF-8 bytes."""
    text = unicodedata.normalize("NFC", raw)
    text = _drop_invisible(text)
    text = text.replace("\\", "/").rsplit("/", 1)[-1]  # strip any directory part, both styles
    text = _FORBIDDEN.sub("_", text)  # also removes drive prefixes such as "C:"
    text = text.strip().strip(".").strip()  # no ".", "..", hidden files or trailing dots
    if not text:
        return FALLBACK_NAME
    if text.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        text = "_" + text
    return _cap_utf8(text, MAX_NAME_BYTES)
