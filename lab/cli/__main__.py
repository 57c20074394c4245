"""``python -m lab.cli``: the `anylab` command."""

import sys

from lab.cli.main import main

sys.exit(main())
