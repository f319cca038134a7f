"""silkpurse's gRPC services, the parts every stage shares (torch-free; imports no stage).

* :mod:`silkpurse.service.server`: :func:`~silkpurse.service.server.serve` (health,
  reflection, graceful shutdown, metrics) and the one interceptor (admission, deadlines, the
  per-replica concurrency limit, error mapping, call logs);
* :mod:`silkpurse.service.status`: silkpurse's errors to gRPC status codes;
* :mod:`silkpurse.service.messages`: requests validated into the core's task dataclasses, and
  tasks into requests;
* :mod:`silkpurse.service.client`: channels with retries and round robin, and one typed
  wrapper per service;
* :mod:`silkpurse.service.settings`, :mod:`~silkpurse.service.metrics`, :mod:`~silkpurse.service.logs`,
  :mod:`~silkpurse.service.inputs` (the job's input, local to the extractor and the encoder).

The servicers themselves live with their stages (``silkpurse_<stage>.server``): thin adapters
from a request to the stage's entry point. See docs/services.md.
"""
