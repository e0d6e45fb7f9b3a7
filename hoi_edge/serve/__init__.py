"""``hoi-edge serve``: one process that serves a detector over HTTP to several cameras at once.

- :mod:`.config` what the server is asked to do (:class:`ServeConfig`) and the safety rules checked before
  any model loads; :mod:`.engine` the one shared detector and its live vocabulary;
- :mod:`.streams` one pipelined stream per source on that detector, added and removed at run time;
- :mod:`.api` hoi-edge's own ``/v1`` API, :mod:`.kserve` the Open Inference Protocol (KServe v2) that
  OpenVINO Model Server and Triton speak, :mod:`.metrics` Prometheus, :mod:`.guard` API key, host and
  upload-size checks, ``static/`` the live page;
- :mod:`.app` puts them together (:func:`create_app`), :mod:`.cli` is the thin ``hoi-edge serve``.
"""
