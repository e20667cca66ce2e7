"""Mixed-chip clusters: strategies that train one model on several chip types at once.

* :mod:`.links`: the path between chip types (shared fabric or WAN, never scale-up links);
* :mod:`.shares`: each type's step time against its share of the batch, and the best split;
* :mod:`.data_parallel`: heterogeneous data parallel, and loosely coupled sites (local SGD);
* :mod:`.stages`, :mod:`.pipeline`: heterogeneous pipeline stages;
* :mod:`.search`: every strategy and each type alone, from one call.
"""
