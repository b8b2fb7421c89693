"""The policy-path lens: the actor's parameters along training (``/actor_path`` of the run file).

``svd`` holds the temporal SVD and its information measures; the path metrics, the reconstruction of the
path's policies and the cross-lens against the Hessian's eigenspaces build on it.
"""
