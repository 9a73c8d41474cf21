"""Protobuf and gRPC modules generated from ``proto/protos`` by
``gen_proto.py``: do not edit. ``pb`` is ``FunctionRpc_pb2`` (the messages),
``pb_grpc`` is ``FunctionRpc_pb2_grpc`` (the ``FunctionRpc`` service)."""

from . import FunctionRpc_pb2 as pb
from . import FunctionRpc_pb2_grpc as pb_grpc

__all__ = ["pb", "pb_grpc"]
