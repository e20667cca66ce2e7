"""Mixed clusters: every strategy, each type alone and apart, their costs and the verdict; the
mixed rows of `compare`.
"""
