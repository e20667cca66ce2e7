"""`moebench profiles` and `stacks`: what the catalog holds."""
