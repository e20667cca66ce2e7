"""`moebench compare`: every chip on its own best plan, priced on one basis, with break-even
prices, deadlines and guards.
"""
