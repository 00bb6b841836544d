"""The git side of the kernel: filter process, hooks, drivers, Git LFS transport."""
