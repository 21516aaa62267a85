"""Box queries (research): a person checks single detections instead of labelling whole
images. Importing this package registers the box strategies (``isal_box``, ``esi_box``,
``entropy_box``, ``random_box``), the :class:`PartialLabels` dataset and the
:class:`IgnoringMaxIoUAssigner` that partly labelled training needs; each strategy plugs
into the round loop through :class:`BoxRounds`."""
from .assigners import IgnoringMaxIoUAssigner
from .partial_labels import PartialLabels
from .rounds import BoxRounds
from .strategies import BoxStrategy, EntropyBox, ESIBox, ISALBox, RandomBox

__all__ = ['BoxRounds', 'BoxStrategy', 'ESIBox', 'EntropyBox', 'ISALBox',
           'IgnoringMaxIoUAssigner', 'PartialLabels', 'RandomBox']
