"""The research shelf, never imported by the product. Comparing strategies on one's own
data: strategies × seeds through the real round loop, each seed's strategies from one shared
round 0, read as paired differences per labelled image, per box and per second of
annotation (``tools/al_study.py``). Importing it (a config's
``custom_imports=dict(imports=['isal_mmdet.study'])``, or a study) registers the research
strategies (:mod:`.research_strategies`) and box queries (:mod:`.box`)."""
from .analysis import analyse_study
from .box import (BoxRounds, BoxStrategy, EntropyBox, ESIBox, IgnoringMaxIoUAssigner, ISALBox,
                  PartialLabels, RandomBox)
from .objective import ResearchObjective
from .research_strategies import ESIResearch, ISALResearch
from .run import StudySetup, run_study

__all__ = ['BoxRounds', 'BoxStrategy', 'ESIBox', 'ESIResearch', 'EntropyBox',
           'IgnoringMaxIoUAssigner', 'ISALBox', 'ISALResearch', 'PartialLabels', 'RandomBox',
           'ResearchObjective', 'StudySetup', 'analyse_study', 'run_study']
