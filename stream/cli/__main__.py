"""``python -m stream.cli``: the same as the ``funnel`` command."""

import sys

from stream.cli.commands import main

sys.exit(main())
