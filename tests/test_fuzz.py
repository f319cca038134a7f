"""Fuzzing the two parsers of untrusted bytes: the frame batch decoder (stored batches may be
truncated, corrupt or hostile) and probe's parsing of ffprobe's report (the input file decides
what ffprobe prints). No exception but the project's own may escape: ``StoreError`` from the
batch decoder, ``InputError`` from probe parsing. Deterministic (derandomized) and fast."""

from __future__ import annotations

import contextlib
import copy
import json
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from silkpurse.batch import FrameBatch
from silkpurse.errors import InputError, StoreError
from silkpurse.media.probe import parse_probe
from silkpurse.settings import Settings

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


# -- the batch decoder -------------------------------------------------------------------------------
KEY = "job/upscale-0123/000001.safetensors"


def valid_batch() -> bytes:
    frames = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    batch = FrameBatch(frames, first_index=8, rate=Fraction(30000, 1001), meta={"stage": "upscale"})
    return batch.to_bytes(KEY)


def decode_or_store_error(data: bytes) -> None:
    with contextlib.suppress(StoreError):
        FrameBatch.from_bytes(data, what="fuzzed batch")
    with contextlib.suppress(StoreError):
        FrameBatch.from_bytes(data, what="fuzzed batch", key=KEY)


def test_the_unfuzzed_batch_decodes() -> None:
    batch = FrameBatch.from_bytes(valid_batch(), key=KEY)
    assert (batch.first_index, len(batch), batch.rate) == (8, 2, Fraction(30000, 1001))


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_decode_or_raise_store_error(data: bytes) -> None:
    decode_or_store_error(data)
    decode_or_store_error(struct.pack("<Q", len(data)) + data)


@FUZZ
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=6), st.integers(min_value=0))
def test_a_valid_batch_with_bytes_changed_or_cut_decodes_or_raises_store_error(
    changes: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(valid_batch())
    for position, value in changes:
        data[position % len(data)] = value
    decode_or_store_error(bytes(data))
    decode_or_store_error(bytes(data[: cut % len(data)]))


def split_batch(raw: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack_from("<Q", raw)
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def join_batch(header: object, payload: bytes) -> bytes:
    body = json.dumps(header).encode()
    return struct.pack("<Q", len(body)) + body + payload


# This test found that a header without "meta" raised KeyError (fixed in silkpurse/batch.py).
@FUZZ
@given(st.data())
def test_a_valid_batch_with_header_fields_changed_decodes_or_raises_store_error(data: st.DataObject) -> None:
    header, payload = split_batch(valid_batch())
    ours = json.loads(header["__metadata__"]["silkpurse"])
    odd = json_values | st.sampled_from(["1/0", "0/1", "-1/2", [2, 3, 4, 3], [72], [], -1, 10**30, "U32", "F32"])
    places = [("ours", k) for k in ours] + [("tensor", k) for k in header["frames"]] + [("meta", "crc32")]
    for where, key in data.draw(st.lists(st.sampled_from(places), min_size=1, max_size=3)):
        target = {"ours": ours, "tensor": header["frames"], "meta": header["__metadata__"]}[where]
        if data.draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = data.draw(odd)
    header["__metadata__"]["silkpurse"] = json.dumps(ours)
    decode_or_store_error(join_batch(header, payload))


# -- probe parsing ------------------------------------------------------------------------------------
META: dict[str, Any] = {
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "1.000000", "start_time": "0.000000"},
    "streams": [
        {
            "index": 0,
            "codec_type": "video",
            "codec_name": "h264",
            "width": 64,
            "height": 48,
            "pix_fmt": "yuv420p",
            "r_frame_rate": "10/1",
            "avg_frame_rate": "10/1",
            "time_base": "1/10240",
            "duration": "1.000000",
            "nb_frames": "10",
            "color_range": "tv",
            "disposition": {"attached_pic": 0},
            "tags": {"language": "und"},
            "side_data_list": [{"rotation": 0}],
        },
        {"index": 1, "codec_type": "audio", "codec_name": "aac", "channels": 2, "sample_rate": "48000"},
        {"index": 2, "codec_type": "subtitle", "codec_name": "mov_text", "tags": {"language": "eng"}},
    ],
}
PACKETS: dict[str, Any] = {"packets": [{"pts": str(1024 * i), "dts": str(1024 * i), "flags": "K_"} for i in range(10)]}


def parse_or_input_error(meta: Any, packets: Any, limits: Settings | None) -> None:
    with contextlib.suppress(InputError):
        parse_probe(Path("fuzzed.mp4"), meta, packets, limits)


def test_the_unfuzzed_report_parses() -> None:
    info = parse_probe(Path("clip.mp4"), META, PACKETS, Settings())
    assert (info.width, info.height, info.frame_count, info.rate) == (64, 48, 10, Fraction(10))


paths = st.sampled_from(
    [("format",), ("streams",), ("streams", 0), ("streams", 1), ("streams", 2)]
    + [("format", k) for k in META["format"]]
    + [("streams", 0, k) for k in META["streams"][0]]
    + [("streams", 1, k) for k in META["streams"][1]]
)


@FUZZ
@given(
    st.lists(st.tuples(paths, json_values | st.sampled_from(["0/0", "1/0", "-5", "nan", "inf", "1e400"])), max_size=4)
)
def test_a_report_with_fields_changed_parses_or_raises_input_error(changes: list[tuple[tuple[Any, ...], Any]]) -> None:
    meta = copy.deepcopy(META)
    for path, value in changes:
        target: Any = meta
        for step in path[:-1]:
            if not isinstance(target, dict | list):
                break
            try:
                target = target[step]
            except (KeyError, IndexError, TypeError):
                break
        else:
            if isinstance(target, dict) or (
                isinstance(target, list) and isinstance(path[-1], int) and path[-1] < len(target)
            ):
                target[path[-1]] = value
    parse_or_input_error(meta, PACKETS, Settings())
    parse_or_input_error(meta, PACKETS, None)


@FUZZ
@given(json_values, json_values)
def test_an_arbitrary_report_parses_or_raises_input_error(meta: Any, packets: Any) -> None:
    parse_or_input_error(meta, packets, Settings())
    parse_or_input_error({"format": META["format"], "streams": META["streams"]}, packets, Settings())


@FUZZ
@given(st.lists(st.one_of(st.integers(-(2**63), 2**63), st.sampled_from(["N/A", None, "x", "1e3"])), max_size=30))
def test_arbitrary_packet_timestamps_parse_or_raise_input_error(times: list[Any]) -> None:
    parse_or_input_error(META, {"packets": [{"pts": t} for t in times]}, Settings())
