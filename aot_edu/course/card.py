"""``python -m aot_edu.course.card [--ship]``: describe the shipped course model from its card, or
ship a freshly trained one (``make train-course-model``'s last step; :func:`.model.ship`).

A module of its own so that ``-m`` runs a module the package has not imported already
(:mod:`aot_edu.course` imports :mod:`.model`).
"""

from aot_edu.course.model import main

if __name__ == "__main__":
    raise SystemExit(main())
