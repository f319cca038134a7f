"""Frame-batch payload formats on real camera frames: size and speed vs the raw SPFB format.

Decodes ``--frames`` frames of a real recording (OpenCV's vtest.avi, 768x576 DivX) three ways:
native rgb24, x2 bicubic upscale rgb24 (smooth, like a super-resolved frame) and native
rgb48le. Every candidate round-trips a batch *including an integrity check* (CRC-32, the
codec's own checksum, or "none" where the format has none) and is verified bit-exact once.

Columns: bytes ratio (encoded / raw frame bytes), encode and decode MB/s of raw frame bytes
(best of ``--repeat``), the same relative to the raw+crc32 baseline measured in the same run,
and a modelled end-to-end time per batch: encode + PUT + GET + decode with the encoded bytes
moving at ``--put-mbps`` / ``--get-mbps`` (defaults: SeaweedFS S3 on this machine).

    .venv/bin/python bench/bench_payload.py [--frames 8] [--repeat 3] [--only native,upscaled,16bit]

Needs numpy, safetensors, zstandard and lz4 (optional) in the venv and ffmpeg on PATH.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

try:
    import zstandard
except ImportError:  # pragma: no cover - reported in the table
    zstandard = None  # type: ignore[assignment]
try:
    import lz4.frame as lz4frame
except ImportError:  # pragma: no cover
    lz4frame = None  # type: ignore[assignment]
try:
    import safetensors.numpy as st_numpy
except ImportError:  # pragma: no cover
    st_numpy = None  # type: ignore[assignment]

SOURCE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
META = {"first_index": 0, "rate": "10/1", "meta": {"stage": "bench", "colour": "bt601"}}

# ---------------------------------------------------------------- source frames


def decode_source(path: Path, frames: int, *, upscale: bool, pix_fmt: str) -> np.ndarray:
    vf = ["-vf", "scale=iw*2:ih*2:flags=bicubic"] if upscale else []
    cmd = [
        FFMPEG,
        "-v",
        "error",
        "-i",
        str(path),
        "-frames:v",
        str(frames),
        *vf,
        "-f",
        "rawvideo",
        "-pix_fmt",
        pix_fmt,
        "-",
    ]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    w, h = (1536, 1152) if upscale else (768, 576)
    dtype = np.uint16 if pix_fmt == "rgb48le" else np.uint8
    return np.frombuffer(out, dtype=dtype).reshape(frames, h, w, 3)


# ---------------------------------------------------------------- candidates
# Each candidate: encode(frames) -> bytes, decode(bytes) -> frames; both include the check.

_PREFIX = struct.Struct("<4sHI")


def _header(frames: np.ndarray, **extra: object) -> bytes:
    return json.dumps(
        {"shape": list(frames.shape), "dtype": frames.dtype.name, **META, **extra}, separators=(",", ":")
    ).encode()


def _parse(data: bytes) -> tuple[dict, memoryview]:
    view = memoryview(data)
    magic, _version, hlen = _PREFIX.unpack_from(view)
    assert magic == b"SPFB"
    return json.loads(bytes(view[_PREFIX.size : _PREFIX.size + hlen])), view[_PREFIX.size + hlen :]


def raw_encode(frames: np.ndarray) -> bytes:
    """Mirror of silkpurse.batch.FrameBatch.to_bytes (SPFB v1)."""
    payload = np.ascontiguousarray(frames).data.cast("B")
    header = _header(frames, crc32=zlib.crc32(payload))
    return b"".join((_PREFIX.pack(b"SPFB", 1, len(header)), header, payload))


def raw_decode(data: bytes) -> np.ndarray:
    header, payload = _parse(data)
    if zlib.crc32(payload) != header["crc32"]:
        raise ValueError("crc mismatch")
    return np.frombuffer(payload, dtype=header["dtype"]).reshape(header["shape"])


# layout filters (applied before a byte compressor, undone after) ------------


def to_planar(frames: np.ndarray) -> np.ndarray:
    """(N,H,W,C) -> (N,C,H,W); for uint16 also split into low/high byte planes."""
    planar = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    if planar.dtype == np.uint16:
        planar = np.ascontiguousarray(planar.view(np.uint8).reshape(*planar.shape, 2).transpose(4, 0, 1, 2, 3))
    return planar


def from_planar(planar: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    n, h, w, c = shape
    if dtype == np.uint16:
        planar = np.ascontiguousarray(planar.reshape(2, n, c, h, w).transpose(1, 2, 3, 4, 0)).view(np.uint16)
        planar = planar.reshape(n, c, h, w)
    return np.ascontiguousarray(planar.reshape(n, c, h, w).transpose(0, 2, 3, 1))


def delta_w(frames: np.ndarray) -> np.ndarray:
    """Planar, then left-neighbour difference along width (modular, same dtype), then byte planes."""
    planar = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    d = np.empty_like(planar)
    d[..., 0] = planar[..., 0]
    np.subtract(planar[..., 1:], planar[..., :-1], out=d[..., 1:])
    if d.dtype == np.uint16:
        d = np.ascontiguousarray(d.view(np.uint8).reshape(*d.shape, 2).transpose(4, 0, 1, 2, 3))
    return d


def undelta_w(d: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    n, h, w, c = shape
    if dtype == np.uint16:
        d = np.ascontiguousarray(d.reshape(2, n, c, h, w).transpose(1, 2, 3, 4, 0)).view(np.uint16)
    d = d.reshape(n, c, h, w)
    planar = np.cumsum(d, axis=-1, dtype=dtype)  # wraps modulo 2**bits: exact inverse
    return np.ascontiguousarray(planar.transpose(0, 2, 3, 1))


def _ident(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frames)


def _ident_back(a: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return a.view(dtype).reshape(shape)


def byte_codec(
    compress: Callable[[memoryview], bytes], decompress: Callable[[memoryview], bytes], layout: str = "interleaved"
) -> tuple[Callable, Callable]:
    fwd, back = {
        "interleaved": (_ident, _ident_back),
        "planar": (to_planar, from_planar),
        "delta": (delta_w, undelta_w),
    }[layout]

    def enc(frames: np.ndarray) -> bytes:
        body = compress(fwd(frames).data.cast("B"))
        header = _header(frames, layout=layout)
        return b"".join((_PREFIX.pack(b"SPFB", 2, len(header)), header, body))

    def dec(data: bytes) -> np.ndarray:
        header, body = _parse(data)
        shape, dtype = tuple(header["shape"]), np.dtype(header["dtype"])
        flat = np.frombuffer(decompress(body), dtype=np.uint8)
        return back(flat, shape, dtype) if layout != "interleaved" else flat.view(dtype).reshape(shape)

    return enc, dec


def zstd_codec(level: int, threads: int = 0, layout: str = "interleaved") -> tuple[Callable, Callable]:
    cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True, write_content_size=True)
    dctx = zstandard.ZstdDecompressor()  # verifies the frame's XXH64 content checksum
    return byte_codec(cctx.compress, dctx.decompress, layout)


def lz4_codec() -> tuple[Callable, Callable]:
    return byte_codec(lambda b: lz4frame.compress(b, content_checksum=True, store_size=True), lz4frame.decompress)


# ffmpeg-pipe codecs (FFV1, PNG); process start-up is part of the cost -----------


def _ffmpeg(args: list[str], data: bytes | memoryview) -> bytes:
    """ffmpeg exits 0 after an ffv1 slice-CRC mismatch (it conceals): any message at -v error is a failure."""
    proc = subprocess.run([FFMPEG, "-v", "error", "-threads", "2", *args], input=data, capture_output=True)
    if proc.returncode or proc.stderr:
        raise RuntimeError(proc.stderr.decode()[-500:])
    return proc.stdout


def ffmpeg_codec(kind: str) -> tuple[Callable, Callable]:
    def enc(frames: np.ndarray) -> bytes:
        n, h, w, _ = frames.shape
        wide = frames.dtype == np.uint16
        src = ["-f", "rawvideo", "-pix_fmt", "rgb48le" if wide else "rgb24", "-s", f"{w}x{h}", "-r", "10", "-i", "-"]
        if kind == "ffv1":
            codec = [
                "-c:v",
                "ffv1",
                "-level",
                "3",
                "-slices",
                "4",
                "-slicecrc",
                "1",
                "-g",
                "1",
                "-pix_fmt",
                "rgb48le" if wide else "bgr0",
                "-f",
                "nut",
                "-",
            ]
        else:  # png, zlib level 6 (ffmpeg default), adaptive filter like libpng
            codec = [
                "-c:v",
                "png",
                "-pred",
                "mixed",
                "-pix_fmt",
                "rgb48be" if wide else "rgb24",
                "-f",
                "image2pipe",
                "-",
            ]
        body = _ffmpeg([*src, *codec], np.ascontiguousarray(frames).data.cast("B"))
        header = _header(frames, codec=kind)
        return b"".join((_PREFIX.pack(b"SPFB", 3, len(header)), header, body))

    def dec(data: bytes) -> np.ndarray:
        header, body = _parse(data)
        wide = header["dtype"] == "uint16"
        demux = ["-f", "nut"] if kind == "ffv1" else ["-f", "png_pipe"]
        # ffv1 is told to fail on a bad slice CRC; png's chunk CRCs are checked by the decoder
        out = _ffmpeg(
            [
                "-xerror",
                *demux,
                "-err_detect",
                "crccheck+explode",
                "-i",
                "-",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb48le" if wide else "rgb24",
                "-",
            ],
            body,
        )
        return np.frombuffer(out, dtype=header["dtype"]).reshape(header["shape"])  # raises if frames missing

    return enc, dec


# standard containers (raw payload) ------------------------------------------------


def npy_encode(frames: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, frames, allow_pickle=False)
    return buf.getvalue()


def npy_decode(data: bytes) -> np.ndarray:
    """Zero-copy: parse the .npy header, then view the payload (what np.load(mmap_mode) does on a file)."""
    buf = io.BytesIO(data)
    version = np.lib.format.read_magic(buf)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(buf)
    assert not fortran
    return np.frombuffer(memoryview(data)[buf.tell() :], dtype=dtype).reshape(shape)


def npy_crc_encode(frames: np.ndarray) -> bytes:
    """npy has no metadata slot: the CRC would live outside (store metadata / sidecar); here appended."""
    body = npy_encode(frames)
    return body + struct.pack("<I", zlib.crc32(memoryview(body)[-frames.nbytes :]))


def npy_crc_decode(data: bytes) -> np.ndarray:
    view = memoryview(data)
    arr = npy_decode(view[:-4])  # type: ignore[arg-type]
    if zlib.crc32(arr.data.cast("B")) != struct.unpack("<I", view[-4:])[0]:
        raise ValueError("crc mismatch")
    return arr


def st_encode(frames: np.ndarray, crc: bool) -> bytes:
    meta = {"spfb": json.dumps({**META, "dtype": frames.dtype.name})}
    if crc:
        meta["crc32"] = str(zlib.crc32(np.ascontiguousarray(frames).data.cast("B")))
    return st_numpy.save({"frames": frames}, metadata=meta)


def st_decode(data: bytes, crc: bool) -> np.ndarray:
    frames = st_numpy.load(data)["frames"]
    if crc:
        (hlen,) = struct.unpack_from("<Q", data)
        meta = json.loads(data[8 : 8 + hlen])["__metadata__"]
        if zlib.crc32(frames.data.cast("B")) != int(meta["crc32"]):
            raise ValueError("crc mismatch")
    return frames


@dataclass
class Candidate:
    name: str
    check: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes], np.ndarray]
    slow: bool = False  # run fewer repeats


def candidates(wide: bool) -> list[Candidate]:
    out = [Candidate("raw+crc32 (SPFB v1)", "crc32", raw_encode, raw_decode)]
    if zstandard is not None:
        for level in (1, 3, 9):
            out.append(Candidate(f"zstd-{level}", "xxh64", *zstd_codec(level), slow=level >= 9))
        out.append(Candidate("zstd-3 threads=2", "xxh64", *zstd_codec(3, threads=2)))
        for layout in ("planar", "delta"):
            for level in (1, 3):
                out.append(Candidate(f"zstd-{level} {layout}", "xxh64", *zstd_codec(level, layout=layout)))
    if lz4frame is not None:
        out.append(Candidate("lz4 (frame, default)", "xxh32", *lz4_codec()))
        out.append(
            Candidate(
                "lz4 delta",
                "xxh32",
                *byte_codec(
                    lambda b: lz4frame.compress(b, content_checksum=True, store_size=True), lz4frame.decompress, "delta"
                ),
            )
        )
    out.append(Candidate("ffv1 L3 slices4 (pipe)", "slice crc", *ffmpeg_codec("ffv1"), slow=True))
    out.append(Candidate("png mixed zlib6 (pipe)", "chunk crc", *ffmpeg_codec("png"), slow=True))
    out.append(Candidate("npy (np.save)", "NONE", npy_encode, npy_decode))
    out.append(Candidate("npy + crc32 trailer", "crc32", npy_crc_encode, npy_crc_decode))
    if st_numpy is not None:
        out.append(Candidate("safetensors", "NONE", lambda f: st_encode(f, False), lambda d: st_decode(d, False)))
        out.append(
            Candidate("safetensors + crc32 meta", "crc32", lambda f: st_encode(f, True), lambda d: st_decode(d, True))
        )
    return out


# ---------------------------------------------------------------- measurement


def best_of(func: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def detects_flip(cand: Candidate, data: bytes, frames: np.ndarray) -> str:
    """Flip one bit in the middle of the encoded batch: 'yes' if decode refuses, 'NO' if it returns wrong frames."""
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x10
    try:
        back = cand.decode(bytes(bad))
    except Exception:  # noqa: BLE001 - any refusal counts
        return "yes"
    return "same" if np.array_equal(back, frames) else "NO"


def run_set(title: str, frames: np.ndarray, args: argparse.Namespace) -> None:
    raw_mb = frames.nbytes / 1e6
    print(
        f"\n== {title}: {frames.shape} {frames.dtype}, {raw_mb:.1f} MB raw; "
        f"e2e = enc + size/{args.put_mbps:g} MB/s PUT + size/{args.get_mbps:g} MB/s GET + dec"
    )
    print(
        f"{'candidate':<26} {'check':<9} {'ratio':>6} {'enc MB/s':>9} {'dec MB/s':>9} "
        f"{'enc/raw':>8} {'dec/raw':>8} {'e2e ms':>7} {'e2e/raw':>8} {'flip':>6}"
    )
    base: tuple[float, float, float] | None = None
    for cand in candidates(frames.dtype == np.uint16):
        data = cand.encode(frames)
        back = cand.decode(data)
        if not np.array_equal(back, frames):
            print(f"{cand.name:<26} NOT LOSSLESS, skipped")
            continue
        flip = detects_flip(cand, data, frames)
        repeat = max(1, min(args.repeat, 3)) if cand.slow else args.repeat
        t_enc = best_of(partial(cand.encode, frames), repeat)
        t_dec = best_of(partial(cand.decode, data), repeat)
        size_mb = len(data) / 1e6
        e2e = t_enc + size_mb / args.put_mbps + size_mb / args.get_mbps + t_dec
        if base is None:
            base = (t_enc, t_dec, e2e)
        print(
            f"{cand.name:<26} {cand.check:<9} {len(data) / frames.nbytes:6.3f} {raw_mb / t_enc:9.0f} "
            f"{raw_mb / t_dec:9.0f} {base[0] / t_enc:8.2f} {base[1] / t_dec:8.2f} {e2e * 1e3:7.0f} "
            f"{e2e / base[2]:8.2f} {flip:>6}"
        )
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many (slow codecs: at most 3)")
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument(
        "--only", default="native,upscaled,16bit", help="comma list of native,upscaled,16bit,16bit-up (opt-in, +60 s)"
    )
    parser.add_argument("--put-mbps", type=float, default=80.0, help="store PUT MB/s (SeaweedFS S3 measured ~80)")
    parser.add_argument("--get-mbps", type=float, default=450.0, help="store GET MB/s (SeaweedFS S3 measured ~450)")
    args = parser.parse_args()
    if not args.source.exists():
        sys.exit(f"{args.source} missing: apt-get install -y opencv-doc (or pass --source)")
    print(
        f"numpy {np.__version__}, zstandard {getattr(zstandard, '__version__', 'missing')}, "
        f"lz4 {'ok' if lz4frame else 'missing'}, safetensors {'ok' if st_numpy else 'missing'}"
    )
    sets = {
        "native": ("native 8-bit", dict(upscale=False, pix_fmt="rgb24")),
        "upscaled": ("upscaled x2 bicubic 8-bit", dict(upscale=True, pix_fmt="rgb24")),
        "16bit": ("native 16-bit (rgb48le)", dict(upscale=False, pix_fmt="rgb48le")),
        # opt-in (slow, 85 MB): the native 16-bit set is 8-bit content (every value v*257), this one
        # has real low bits (bicubic computed at 16 bits), like a model's 16-bit output
        "16bit-up": ("upscaled x2 bicubic 16-bit (rgb48le)", dict(upscale=True, pix_fmt="rgb48le")),
    }
    start = time.perf_counter()
    for key in args.only.split(","):
        title, kw = sets[key]
        run_set(title, decode_source(args.source, args.frames, **kw), args)  # type: ignore[arg-type]
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
