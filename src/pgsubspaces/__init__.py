"""Regenerating "Identifying Policy Gradient Subspaces" (Schneider et al., ICLR 2024) on today's stack.

One subpackage per stage, in the order the data flows (each stage reads only what the earlier ones wrote):

    config (+ sweep)  ->  train  ->  export  ->  analysis  ->  tables  ->  figures
    RunSpec JSON         run dir    run.h5      data/eigen/     CSV        PDF/PNG
                                                spectrum .h5

At the top level sit what every stage shares: ``config`` (schema validation, run specs; ``netsize`` its
parameter counts), ``sweep`` (the random-hyperparameter study: its configurations feed the config, its
table follows the tables), ``atomic`` and ``h5io`` (atomic, checksummed outputs), ``versions``, ``faults``
(test-only fault injection) and ``verify`` (checks every file of an experiment for damage).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
