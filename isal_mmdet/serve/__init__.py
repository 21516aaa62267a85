"""Serving the active-learning loop to a labelling tool: a Label Studio ML backend that
pre-annotates and ranks the pool with the latest round's model and trains the next round
from the annotators' work. Built on :mod:`isal_mmdet.al` and :mod:`isal_mmdet.labelling`;
nothing in the package imports it.
"""
