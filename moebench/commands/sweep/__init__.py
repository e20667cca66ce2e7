"""`moebench sweep`: the best plan at every point of a grid."""
