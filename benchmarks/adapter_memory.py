"""What each adapter served beside the default costs in memory: the bytes of tensors and arrays it
holds that the default does not (shared storage counted once), and the process's resident memory
after loading it, against a second model loaded whole.

Usage (from the repository root)::

    python benchmarks/adapter_memory.py --model default --adapter models/shop [--adapter ...]
    python benchmarks/adapter_memory.py --model default --copies 2   # adapters: copies of default

`--copies N` saves N copies of the default as adapter directories (in a temporary folder): the same
layout and sizes as `cxnlp adapt` output, with no adaptation run. Prints, per adapter, its own
bytes, the resident-memory growth while loading it, and its predictions' largest difference from
the same directory loaded alone.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

TEXTS = ["غذا سرد بود و پیک یک ساعت دیر رسید", "الخدمة ممتازة", "The parcel came open"] * 4


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _storages(model) -> dict[int, int]:
    """Storage address -> bytes of every tensor and array a loaded model holds (runtime
    networks included), found by walking its attributes."""
    import numpy as np
    import torch

    found: dict[int, int] = {}
    seen: set[int] = set()

    def walk(value, depth: int = 0) -> None:
        if id(value) in seen or depth > 12:
            return
        seen.add(id(value))
        if isinstance(value, torch.nn.Module):
            for tensor in [*value.parameters(), *value.buffers()]:
                found[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            for packed in value.state_dict().values():  # quantized layers keep packed weights
                if isinstance(packed, torch.Tensor):
                    storage = packed.untyped_storage() if not packed.is_quantized else None
                    if storage is not None:
                        found[storage.data_ptr()] = storage.nbytes()
            return
        if isinstance(value, torch.Tensor):
            found[value.untyped_storage().data_ptr()] = value.untyped_storage().nbytes()
        elif isinstance(value, np.ndarray):
            base = value if value.base is None else value.base
            if isinstance(base, np.ndarray):
                found[base.__array_interface__["data"][0]] = base.nbytes
        elif isinstance(value, dict):
            for v in value.values():
                walk(v, depth + 1)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, depth + 1)
        elif hasattr(value, "__dict__") and type(value).__module__.startswith(("cxnlp", "sklearn")):
            for v in vars(value).values():
                walk(v, depth + 1)

    walk(model)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--adapter", action="append", default=[], help="an adapted model dir")
    parser.add_argument("--copies", type=int, default=0, help="adapters: N copies of --model")
    args = parser.parse_args()

    import numpy as np
    import transformers  # noqa: F401 - imported before the first reading, as torch is

    import cxnlp
    from cxnlp.models import transformer  # noqa: F401

    start = _rss_mb()
    base = cxnlp.load(args.model)
    base.predict(TEXTS)  # builds the runtime network
    after_base = _rss_mb()
    print(f"default {args.model}: +{after_base - start:.0f} MB resident")
    adapters = list(args.adapter)
    tmp = tempfile.TemporaryDirectory(prefix="cxnlp-adapters-")
    for n in range(args.copies):
        adapters.append(str(base.save(Path(tmp.name) / f"copy{n}")))
    held = _storages(base)
    print(f"  its tensors and arrays: {sum(held.values()) / 1e6:.1f} MB")
    for directory in adapters:
        before = _rss_mb()
        adapter = cxnlp.load(directory, share_with=base)
        shared = adapter.predict_proba(TEXTS)
        grown = _rss_mb() - before
        own = {k: v for k, v in _storages(adapter).items() if k not in held}
        held.update(own)
        alone = cxnlp.load(directory)
        gap = float(np.abs(alone.predict_proba(TEXTS) - shared).max())
        whole = sum(_storages(alone).values())
        del alone
        print(
            f"adapter {directory}: own tensors and arrays {sum(own.values()) / 1e6:.1f} MB "
            f"(loaded whole: {whole / 1e6:.1f} MB); +{grown:.0f} MB resident; largest "
            f"probability difference from it loaded alone {gap:.1e}"
        )
    tmp.cleanup()


if __name__ == "__main__":
    main()
