"""``python -m resbench``: the ``resbench`` command."""
import sys

from resbench.cli import main

sys.exit(main())
