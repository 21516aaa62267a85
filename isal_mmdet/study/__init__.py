"""Comparing strategies on one's own data: strategies × seeds through the real round loop,
each seed's strategies from one shared round 0, read as paired differences per labelled
image, per box and per second of annotation (``tools/al_study.py``)."""
from .analysis import analyse_study
from .run import StudySetup, run_study

__all__ = ['StudySetup', 'analyse_study', 'run_study']
