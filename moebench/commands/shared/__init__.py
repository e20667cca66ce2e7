"""What every feature uses: rendering (report), options and job setup, plan text, prices and costs,
intervals, plots, assumed settings, stack caveats.
"""
