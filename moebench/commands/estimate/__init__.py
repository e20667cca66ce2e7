"""`moebench estimate` and `explain`: one model, chip and cluster; why a plan does not fit and what
would make it.
"""
