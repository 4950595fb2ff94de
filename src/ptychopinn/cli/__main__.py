"""``python -m ptychopinn.cli``: the console script."""

from ptychopinn.cli.main import main

raise SystemExit(main())
