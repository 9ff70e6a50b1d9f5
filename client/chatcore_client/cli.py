"""``chatcore-client``: the command line (options, logging) that starts the desktop client."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tkinter as tk
from typing import Optional

from chatcore_client.app import App
from chatcore_client.config import load_settings
from chatcore_client.servers import ServerListError, parse_servers


def main(argv: Optional[list[str]] = None) -> int:
    """``chatcore-client [--server H:P,H:P | --host H] [--port P]``: start the desktop client."""
    parser = argparse.ArgumentParser(prog="chatcore-client", description="chatcore desktop client")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--server", metavar="HOST:PORT[,HOST:PORT...]",
                       help="the server, or a cluster's nodes comma-separated, tried in turn "
                            "(default: SERVER_IP, which may be such a list)")
    where.add_argument("--host", help="server address (default: SERVER_IP or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="server port, and the port of entries without one "
                                                 "(default: SERVER_PORT or 8888)")
    parser.add_argument("--verbose", action="store_true", help="log debugging detail to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    host = args.server or args.host
    if host or args.port:
        settings = dataclasses.replace(settings, host=host or settings.host, port=args.port or settings.port)
    if args.server:
        try:
            parse_servers(settings.host, settings.port, settings.max_servers)
        except ServerListError as exc:
            parser.error(f"--server: {exc}")
    try:
        app = App(settings)
    except tk.TclError as exc:
        print(f"chatcore-client: cannot open a window: {exc}")
        return 1
    app.run()
    return 0
