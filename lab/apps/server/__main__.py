"""``python -m lab.apps.server``: the pod server."""

import sys

from lab.apps.server.main import main

sys.exit(main())
