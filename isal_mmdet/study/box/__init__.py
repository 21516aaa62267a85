"""Box queries (research): a person checks single detections instead of labelling whole
images. Importing this package registers the box strategies (``isal_box``, ``esi_box``,
``entropy_box``, ``random_box``) and the :class:`PartialLabels` dataset; partly labelled
training uses :class:`IgnoringMaxIoUAssigner` (shared with semi-supervised rounds, in
``isal_mmdet.detection``); each strategy plugs into the round loop through
:class:`BoxRounds`."""
from ...detection.assigners import IgnoringMaxIoUAssigner
from .partial_labels import PartialLabels
from .rounds import BoxRounds
from .strategies import BoxStrategy, EntropyBox, ESIBox, ISALBox, RandomBox

__all__ = ['BoxRounds', 'BoxStrategy', 'ESIBox', 'EntropyBox', 'ISALBox',
           'IgnoringMaxIoUAssigner', 'PartialLabels', 'RandomBox']
