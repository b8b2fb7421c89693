"""Stage 4, tables: a run file and its eigen and spectrum files in, tidy CSV tables out (docs/tables.md).

``tables`` (``python -m pgsubspaces.tables run|merge|finding-ii``) writes and merges the per-run tables with
the paper's ``metrics``; ``scorecard`` (``python -m pgsubspaces.tables.scorecard``) checks the paper's claims
on an experiment's tables; ``summary`` (``python -m pgsubspaces.tables.summary``) prints the numbers the README
quotes.
"""
