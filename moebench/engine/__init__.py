"""The engine: per-token work, parallel plans, collectives, memory, the step model's terms and
the vectorised plan search. Inputs come in as records; results go out as arrays per plan.
"""
