"""`python -m oryx ...` (also what `torchrun -m oryx ...` runs)."""

import sys

from oryx.cli.main import main

sys.exit(main())
