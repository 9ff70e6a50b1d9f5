"""``python -m chatcore_client``: start the desktop client."""

from chatcore_client.app import main

raise SystemExit(main())
