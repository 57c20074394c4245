"""``python -m lab.apps.agent``: the node agent."""

import sys

from lab.apps.agent.main import main

sys.exit(main())
