"""Server reflection under both of its names: `grpc.reflection.v1` (what current grpcurl, Postman and
grpc-java ask first) and `grpc.reflection.v1alpha` (what older clients ask).

grpcio-reflection ships only v1alpha (grpc/grpc#38576). v1 is the same protocol renamed: grpc-proto's
`grpc/reflection/v1/reflection.proto` has v1alpha's messages and fields, number for number, under another
package, so v1alpha's servicer answers v1 calls byte for byte. The v1 file is also added to the descriptor
pool, derived from the v1alpha one, so that a client can describe the v1 service it talks to.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA_SERVICE_NAME = reflection.SERVICE_NAME
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
_V1ALPHA_PACKAGE = "grpc.reflection.v1alpha"
_V1_PACKAGE = "grpc.reflection.v1"


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection of `service_names` (and of reflection itself, both versions) on `server`."""
    _add_v1_descriptor()
    names = [*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME]
    servicer = reflection.aio.ReflectionServicer(names)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler})
            for name in (V1ALPHA_SERVICE_NAME, V1_SERVICE_NAME)
        )
    )


@functools.cache
def _add_v1_descriptor() -> None:
    """grpc/reflection/v1/reflection.proto in the default pool: the v1alpha file with its package renamed."""
    pool = descriptor_pool.Default()
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    file.name = file.name.replace("v1alpha", "v1")
    try:
        pool.FindFileByName(file.name)
        return  # someone loaded the real one
    except KeyError:
        pass
    file.package = _V1_PACKAGE
    file.ClearField("options")
    for message in file.message_type:
        for field in message.field:
            if field.type_name.startswith(f".{_V1ALPHA_PACKAGE}."):
                field.type_name = f".{_V1_PACKAGE}." + field.type_name.removeprefix(f".{_V1ALPHA_PACKAGE}.")
    for service in file.service:
        for method in service.method:
            method.input_type = method.input_type.replace(_V1ALPHA_PACKAGE, _V1_PACKAGE)
            method.output_type = method.output_type.replace(_V1ALPHA_PACKAGE, _V1_PACKAGE)
    pool.Add(file)
