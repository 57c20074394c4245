"""``python -m lab.apps.ecmpgroups``: resilient next-hop groups for the VIPs."""

import sys

from lab.apps.ecmpgroups.main import main

sys.exit(main())
