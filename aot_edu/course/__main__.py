"""``python -m aot_edu.course --write | --check``: generate or check the notebooks
(:mod:`aot_edu.course.notebooks`; ``make notebooks``, ``make check-notebooks``)."""

from aot_edu.course.notebooks import main

raise SystemExit(main())
