"""``python -m natsbook.lab`` is the ``natsbook`` command."""

from .cli import main

raise SystemExit(main())
