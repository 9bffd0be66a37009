"""Named entities: models per language, a fallback for the others, normalisation and merging.

The stage (:mod:`tasks.entities`) wires these together; each module has one job:
:mod:`.normalise` (labels, spans, folding), :mod:`.models` (spaCy pipelines, lazily loaded and
pinned by hash), :mod:`.gazetteer` (places from GeoNames and CLDR), :mod:`.fallback`
(entities for languages without a model), :mod:`.merge` (one entity per thing a document
names) and :mod:`.extract` (the whole path for one or many documents).
"""
