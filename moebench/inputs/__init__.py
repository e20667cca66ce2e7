"""Inputs, kept apart: hardware, model, stack and run (with scenarios), their schema and loading.

Everything here turns files and options into frozen, validated records in base units; nothing
here knows about plans or step times.
"""
