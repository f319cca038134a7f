"""silkpurse's orchestration: the ``enhance-video`` Prefect flow, which walks the same job plan
as the embedded runner with every stage called through its service, and the Jobs gRPC API."""

from __future__ import annotations

FLOW_NAME = "enhance-video"
DEPLOYMENT_NAME = "default"
DEPLOYMENT = f"{FLOW_NAME}/{DEPLOYMENT_NAME}"
