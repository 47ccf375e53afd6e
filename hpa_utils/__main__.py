"""`python -m hpa_utils ...`: see hpa_utils.cli."""

from hpa_utils.cli import main

raise SystemExit(main())
