"""`moebench validate` and `calibrate`: measured runs, predicted every way, and the fit of a
stack's figures.
"""
