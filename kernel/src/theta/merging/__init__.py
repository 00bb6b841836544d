"""Merging checkpoints: the merge policy (which strategy merges which parameter) and the
three-way merge of one checkpoint's metadata, parameter by parameter (docs/merging.md)."""
