"""``python -m lab.recorder --spec FILE``: the FIB recorder process."""

from lab.recorder.monitor import main

raise SystemExit(main())
