"""Stage 2, export: a run directory (or SB3 zips trained elsewhere) in, one HDF5 run file out (docs/hdf5.md).

``export`` (``python -m pgsubspaces.export run|model``) writes the run file; ``runfile`` reads it back for
every later stage; ``sb3_files`` reads foreign SB3 zips and pickles as data, never as code.
"""
