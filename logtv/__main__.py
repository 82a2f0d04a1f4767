"""`python -m logtv` runs the command line."""

from logtv.cli import main

raise SystemExit(main())
