"""``python -m pgsubspaces.figures``, with usage and errors naming figures.py as before the package split."""

import sys

from pgsubspaces.figures import figures

sys.argv[0] = figures.__file__
figures.main()
