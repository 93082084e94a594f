"""`python -m firmware_app` is the `frontdesk` command."""

import sys

from .cli import main

sys.exit(main())
