"""``python -m autoprune``: the command line."""

from __future__ import annotations

import sys

from autoprune.workflow.cli import main

sys.exit(main())
