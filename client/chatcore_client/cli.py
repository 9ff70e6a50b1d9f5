"""``chatcore-client``: the command line (options, logging) that starts the desktop client."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tkinter as tk
from typing import Optional

from chatcore_client.app import App
from chatcore_client.config import load_settings


def main(argv: Optional[list[str]] = None) -> int:
    """``chatcore-client [--host H] [--port P]``: start the desktop client."""
    parser = argparse.ArgumentParser(prog="chatcore-client", description="chatcore desktop client")
    parser.add_argument("--host", help="server address (default: SERVER_IP or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="server port (default: SERVER_PORT or 8888)")
    parser.add_argument("--verbose", action="store_true", help="log debugging detail to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    if args.host or args.port:
        settings = dataclasses.replace(settings, host=args.host or settings.host, port=args.port or settings.port)
    try:
        app = App(settings)
    except tk.TclError as exc:
        print(f"chatcore-client: cannot open a window: {exc}")
        return 1
    app.run()
    return 0
