"""The PPTB study (docs/pptb.md): base and PPTB runs paired by seed, scored against a random agent.

``random_agent`` evaluates uniform random actions per task (the zero of the normalised scores); ``scores``
turns the exported runs' evaluation curves into SCORE and AUC tables, the paper's normalised aggregate and
rliable's interval estimates (``python -m pgsubspaces.comparison``).
"""
