"""Stage 3, analysis: a run file in, per checkpoint a data file, an eigen file and a spectrum file out.

``data`` (``python -m pgsubspaces.analysis.data``) samples the precise set and mini-batches of a checkpoint;
``eigen`` (``python -m pgsubspaces.analysis.eigen``) writes top-k Hessian eigenpairs and gradients;
``spectrum`` (``python -m pgsubspaces.analysis.spectrum``) every eigenvalue of small networks. Underneath:
``losses`` (the four losses of a flat parameter vector), ``checkpoint_losses`` (a checkpoint's losses on its
data file), ``hessian`` (chunked Hessian-vector products) and ``eigensolvers``.
"""
