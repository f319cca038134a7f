"""The protos follow buf's STANDARD lint conventions (checked on the compiled descriptors, since
buf itself is not installable here): package and directory agree, names are cased the buf way,
every enum starts with a zero ``<ENUM>_UNSPECIFIED`` value with prefixed values, services end in
``Service``, and every RPC has its own ``<Rpc>Request``/``<Rpc>Response`` (or service-prefixed)
messages used by no other RPC."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FileDescriptor

from silkpurse.v1 import common_pb2, encoder_pb2, extractor_pb2, interpolator_pb2, jobs_pb2, upscaler_pb2

FILES: list[FileDescriptor] = [
    m.DESCRIPTOR for m in (common_pb2, encoder_pb2, extractor_pb2, interpolator_pb2, jobs_pb2, upscaler_pb2)
]
PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*$")
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def messages(file: FileDescriptor) -> list[Descriptor]:
    found: list[Descriptor] = []
    todo = list(file.message_types_by_name.values())
    while todo:
        message = todo.pop()
        found.append(message)
        todo.extend(message.nested_types)
    return found


def enums(file: FileDescriptor) -> list[EnumDescriptor]:
    return list(file.enum_types_by_name.values()) + [e for m in messages(file) for e in m.enum_types]


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_package_and_directory_agree_and_names_are_cased(file: FileDescriptor) -> None:
    assert file.package == "silkpurse.v1"
    assert file.name.startswith("silkpurse/v1/") and SNAKE.match(file.name.rsplit("/", 1)[1].removesuffix(".proto"))
    for message in messages(file):
        assert PASCAL.match(message.name), message.full_name
        for field in message.fields:
            assert SNAKE.match(field.name), f"{message.full_name}.{field.name}"


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_enums_start_with_a_prefixed_zero_unspecified_value(file: FileDescriptor) -> None:
    for enum in enums(file):
        prefix = upper_snake(enum.name) + "_"
        assert enum.values[0].number == 0 and enum.values[0].name == prefix + "UNSPECIFIED", enum.full_name
        for value in enum.values:
            assert UPPER_SNAKE.match(value.name) and value.name.startswith(prefix), value.name


def test_services_and_rpcs_are_named_the_buf_way() -> None:
    used: Counter[str] = Counter()
    services = [s for f in FILES for s in f.services_by_name.values()]
    assert {s.name for s in services} == {
        "ExtractorService",
        "UpscalerService",
        "InterpolatorService",
        "EncoderService",
        "JobsService",
    }
    for service in services:
        for method in service.methods:
            allowed = {method.name, service.name + method.name}
            assert method.input_type.name.removesuffix("Request") in allowed, method.full_name
            assert method.output_type.name.removesuffix("Response") in allowed, method.full_name
            used.update([method.input_type.full_name, method.output_type.full_name])
    assert all(count == 1 for count in used.values()), [name for name, n in used.items() if n > 1]
