"""Stage 5, figures: tidy tables in, the paper's figures (PDF and PNG) out; never a metric recomputed.

``figures`` (``python -m pgsubspaces.figures NAME``) holds every figure and its caption; ``style`` the ICLR
sizes, fonts and colours.
"""
