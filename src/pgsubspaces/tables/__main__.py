"""``python -m pgsubspaces.tables``, with usage and errors naming tables.py as before the package split."""

import sys

from pgsubspaces.tables import tables

sys.argv[0] = tables.__file__
tables.main()
