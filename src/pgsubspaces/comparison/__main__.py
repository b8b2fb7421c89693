"""``python -m pgsubspaces.comparison``: the PPTB study's tables (``scores``)."""

from pgsubspaces.comparison.scores import main

main()
