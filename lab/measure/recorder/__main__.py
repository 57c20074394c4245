"""``python -m lab.measure.recorder --spec FILE``: the FIB recorder process."""

from lab.measure.recorder.monitor import main

raise SystemExit(main())
