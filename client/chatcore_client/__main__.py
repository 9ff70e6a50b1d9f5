"""``python -m chatcore_client``: start the desktop client."""

from chatcore_client.cli import main

raise SystemExit(main())
