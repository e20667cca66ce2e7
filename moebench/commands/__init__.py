"""What each command computes (estimate, compare, explain, sweep, validate, calibrate) and how
its result is reported: records -> one DataFrame -> one rendering.
"""
