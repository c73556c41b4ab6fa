"""Which inference engine runs the shipped transformer fastest without changing its answers: texts
per second on short reviews, label agreement with float32, and macro-F1 per language on labeled
test rows, for each engine in one run on the same texts.

Usage (from the repository root)::

    python benchmarks/engines.py [--model default] [--n 1200] [--per-lang 400]
        [--engines float32,bfloat16,int8-all,ort-float32,ort-int8]

Engines: PyTorch float32 (the reference labels), bfloat16 autocast (cxnlp's default where the CPU
multiplies bf16 in hardware), dynamic int8 of every linear layer (`torch.ao`), ONNX Runtime float32
and ONNX Runtime dynamic int8 of the encoder layers' matrix products only (embeddings and head kept
in float32; per-channel weights; needs `pip install onnxruntime onnx`). Every engine gets the same
normalised texts, batches of 32 sorted by length.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

ENGINES = ("float32", "bfloat16", "int8-all", "ort-float32", "ort-int8")


def batches(tokenizer, texts: list[str], prefix: str, max_length: int, size: int = 32):
    """(index, input_ids, attention_mask) numpy batches, sorted by length."""
    import numpy as np

    order = np.argsort([len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), size):
        index = order[start : start + size]
        encoded = tokenizer(
            [prefix + texts[i] for i in index],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="np",
        )
        yield index, encoded["input_ids"].astype("int64"), encoded["attention_mask"].astype("int64")


def torch_logits(model, texts: list[str], dtype: str):
    import numpy as np
    import torch

    model.dtype, model._runtime = dtype, None
    _, net = model.inference_net()
    out = np.zeros((len(texts), len(model.labels)))
    with torch.inference_mode():
        for index, ids, mask in batches(
            model.tokenizer, texts, model.net.spec.prefix, model.max_length
        ):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
                logits = net(torch.from_numpy(ids), torch.from_numpy(mask))
            out[index] = logits.float().numpy()
    return out


def export_onnx(model, path: Path) -> Path:
    import torch

    model.dtype, model._runtime = "float32", None
    net = model.net.float().eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    torch.onnx.export(
        net,
        (ids, mask),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "length"},
            "attention_mask": {0: "batch", 1: "length"},
            "logits": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )
    return path


def quantize_layers(source: Path, target: Path) -> Path:
    """Dynamic int8 of the encoder layers' MatMuls only (not the embeddings' Gather, not the head)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source)).graph
    nodes = [
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and "/layer." in n.name and "/attention/self/MatMul" not in n.name
    ]
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_quantize=nodes,
        extra_options={"MatMulConstBOnly": True},
    )
    return target


def ort_logits(path: Path, model, texts: list[str], threads: int):
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = np.zeros((len(texts), len(model.labels)))
    for index, ids, mask in batches(
        model.tokenizer, texts, model.net.spec.prefix, model.max_length
    ):
        out[index] = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
    return out, session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--n", type=int, default=1200, help="short reviews timed")
    parser.add_argument("--max-chars", type=int, default=100)
    parser.add_argument("--per-lang", type=int, default=400, help="labeled test rows per language")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import numpy as np
    import torch
    from predict_speed import review_texts
    from sklearn.metrics import f1_score

    import cxnlp
    from cxnlp.labels import SENTIMENTS
    from cxnlp.models.threads import available_cores
    from cxnlp.text.normalize import normalize
    from training.data import load_corpus

    threads = args.threads or available_cores()
    torch.set_num_threads(threads)
    model = cxnlp.load(args.model)
    if model.kind == "blend":
        model = next(m for m in model.members if m.kind == "transformer")
    short = [normalize(t) for t in review_texts(Path(args.data), args.n, max_chars=args.max_chars)]
    corpus = load_corpus(args.data)
    test = corpus[(corpus["split"] == "test") & corpus["label"].isin(SENTIMENTS)]
    test = test.sample(frac=1.0, random_state=3).groupby("lang").head(args.per_lang)
    labeled = [normalize(t, lang=lang) for t, lang in zip(test["text"], test["lang"], strict=True)]
    gold, langs = test["label"].to_numpy(), test["lang"].to_numpy()
    print(
        f"{len(short)} short reviews (<= {args.max_chars} chars), {len(labeled)} labeled test rows, "
        f"{threads} threads, torch {torch.__version__}"
    )
    print(f"{'engine':>12} {'texts/s':>8} {'agree':>7}  macro-F1 fa / ar / en")
    reference = None
    work = Path(tempfile.mkdtemp(prefix="cxnlp-engines-"))
    for engine in args.engines.split(","):
        if engine.startswith("ort-"):
            source = work / "model.onnx"
            if not source.exists():
                export_onnx(model, source)
            path = (
                source if engine == "ort-float32" else quantize_layers(source, work / "int8.onnx")
            )
            ort_logits(path, model, short[:64], threads)  # warm up
            started = time.perf_counter()
            ort_logits(path, model, short, threads)
            seconds = time.perf_counter() - started
            logits, _ = ort_logits(path, model, labeled, threads)
        else:
            torch_logits(model, short[:64], engine)
            started = time.perf_counter()
            torch_logits(model, short, engine)
            seconds = time.perf_counter() - started
            logits = torch_logits(model, labeled, engine)
        predicted = np.array(SENTIMENTS)[logits.argmax(1)]
        if reference is None:
            reference = predicted
        agree = float((predicted == reference).mean())
        scores = " / ".join(
            f"{f1_score(gold[langs == lang], predicted[langs == lang], average='macro'):.4f}"
            for lang in ("fa", "ar", "en")
        )
        print(f"{engine:>12} {len(short) / seconds:8.1f} {100 * agree:6.1f}%  {scores}")


if __name__ == "__main__":
    main()
