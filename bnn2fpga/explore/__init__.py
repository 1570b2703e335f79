"""`bnn2fpga explore`: search pruning methods, width allocations and input planes for the most accurate
network that fits a board at a frame rate (``search.explore``)."""

from .search import FORMAT, ExploreOptions, ExploreResult, explore

__all__ = ["FORMAT", "ExploreOptions", "ExploreResult", "explore"]
