"""``python -m pgsubspaces.train``, with usage and errors naming train.py as before the package split."""

import sys

from pgsubspaces.train import train

sys.argv[0] = train.__file__
train.main()
