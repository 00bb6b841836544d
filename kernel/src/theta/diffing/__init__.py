"""Comparing versions of checkpoints from their metadata and objects, never from rebuilt files.

`figures` computes per-tensor figures, `sides` reads one version of a file (a metadata file
or a checkpoint in the working tree), `engine` compares two versions of one file,
`revisions` finds which files differ between revisions, the index and the working tree the
way `git diff` does, `select` turns parameter globs into the objects their chains need, and
`history` walks the commits that changed a model.
"""
