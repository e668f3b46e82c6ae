"""The gRPC project's own Python client (PyPI grpcio and
grpcio-health-checking) against a service's gRPC health port, for
examples/tests/peer_grpc.rs:

  grpc_health_client.py ADDR check SERVICE   -> SERVING | NOT_SERVING | ERROR <code>
  grpc_health_client.py ADDR list            -> one line per service: 'NAME' STATUS
  grpc_health_client.py ADDR watch SERVICE N -> the first N statuses, one per line, as they come
"""
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def name(status):
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def main():
    addr, command = sys.argv[1], sys.argv[2]
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            if command == "check":
                reply = stub.Check(health_pb2.HealthCheckRequest(service=sys.argv[3]), timeout=5)
                print(name(reply.status), flush=True)
            elif command == "list":
                reply = stub.List(health_pb2.HealthListRequest(), timeout=5)
                for service in sorted(reply.statuses):
                    print(repr(service), name(reply.statuses[service].status), flush=True)
            elif command == "watch":
                wanted = int(sys.argv[4])
                request = health_pb2.HealthCheckRequest(service=sys.argv[3])
                for seen, reply in enumerate(stub.Watch(request, timeout=60), start=1):
                    print(name(reply.status), flush=True)
                    if seen >= wanted:
                        break
            else:
                sys.exit("unknown command " + command)
        except grpc.RpcError as e:
            print("ERROR", e.code().name, flush=True)


if __name__ == "__main__":
    main()
