"""``python -m pgsubspaces.export``, with usage and errors naming export.py as before the package split."""

import sys

from pgsubspaces.export import export

sys.argv[0] = export.__file__
export.main()
