"""Stage 1, training: a resolved ``RunSpec`` (config) in, a run directory of SB3 checkpoints out.

``train`` (``python -m pgsubspaces.train``) trains one agent on the checkpoint grid and resumes from its last
checkpoint; ``agents``, ``envs`` and ``parameters`` build the agents, environments and flat actor/critic
vectors that export and analysis rebuild later; ``callbacks``, ``checkpoints`` and ``curves`` write the run
directory (layout in ``checkpoints``).
"""
