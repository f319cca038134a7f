#!/usr/bin/env python3
"""Container health check: asks the service's standard gRPC health service (``grpc.health.v1``).

Exit 0 when the server answers SERVING, 1 otherwise (NOT_SERVING while warming up or draining,
or no answer). Used by the images' ``HEALTHCHECK`` and docker-compose; Kubernetes uses its
native ``grpc`` probes instead. Port: ``SILKPURSE_PORT``, else the first argument.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    port = os.environ.get("SILKPURSE_PORT") or (argv[1] if len(argv) > 1 else "")
    if not port:
        print("healthcheck: set SILKPURSE_PORT or pass the port", file=sys.stderr)
        return 1
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
        except grpc.RpcError as err:
            print(f"healthcheck: {err.code().name}", file=sys.stderr)
            return 1
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    if not serving:
        print(f"healthcheck: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}", file=sys.stderr)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
