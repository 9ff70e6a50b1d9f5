"""chatcore: a small, secure chat server whose features are pluggy plugins."""

__version__ = "0.1.0"

from chatcore.config import Setting  # noqa: E402  (after __version__: submodules import it)
from chatcore.errors import CommandError  # noqa: E402
from chatcore.plugins import hookimpl  # noqa: E402

__all__ = ["CommandError", "Setting", "hookimpl", "__version__"]
