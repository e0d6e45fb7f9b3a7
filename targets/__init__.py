"""Export targets, one module per runtime (``<name>_target.py``, an ``export_unit`` function), all following
:mod:`targets.contract`; :mod:`targets.export` (``ExportConfig``, ``export_artifact``) drives them. Each
target's entry in :mod:`hoi_edge.targets_registry` names its module."""
