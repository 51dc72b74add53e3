"""`python -m checks.reference [--scale N]`: start the embedded reference Ordak, print a URL for psql."""

import sys

from checks.reference.cluster import main

sys.exit(main())
