"""``python -m liqtui``."""

import sys

from liqtui.cli import main

sys.exit(main())
