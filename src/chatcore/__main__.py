"""``python -m chatcore``: the same as the ``chatcore`` command."""

import sys

from chatcore.cli import main

sys.exit(main())
