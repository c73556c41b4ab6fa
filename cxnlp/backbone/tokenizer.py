"""The XLM-R Unigram tokenizer of multilingual-e5-small, rebuilt offline from an E5S1 file.

The vocabulary and scores come from the file. The normaliser is a SentencePiece precompiled
charsmap compiled at build time by the ``sentencepiece`` package: its built-in ``nmt_nfkc`` rules
with every single-code-point rule replaced by the file's own per-code-point map (which equals the
original 2019 XLM-R charsmap exactly) and multi-code-point rules dropped when they involve
characters that XLM-R's charsmap did not know. The result is byte-identical to the charsmap in the
original ``tokenizer.json`` (checked against :data:`REFERENCE_CHARSMAP_SHA256`).
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from cxnlp.backbone.e5s1 import E5S1File

if TYPE_CHECKING:
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

#: sha256 of ``precompiled_charsmap`` in the original multilingual-e5-small / XLM-R tokenizer.json.
REFERENCE_CHARSMAP_SHA256 = "0942789e0111452f1cc446f70036e26d24458c3c7858c53cc12ca4d87531279b"
#: Scripts encoded after XLM-R's charsmap was built (Unicode 13-16) that have composition rules.
_LATE_SCRIPTS = (
    (0x105C0, 0x105FF),  # Todhri
    (0x10D40, 0x10D8F),  # Garay
    (0x11380, 0x113FF),  # Tulu-Tigalari
    (0x11900, 0x1195F),  # Dives Akuru
    (0x16100, 0x1613F),  # Gurung Khema
    (0x16D40, 0x16D7F),  # Kirat Rai
)
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}


def _proto_field(buf: bytes, field: int) -> bytes:
    """Return length-delimited ``field`` of a serialized protobuf message (no protobuf needed)."""

    def varint(i: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            b = buf[i]
            value |= (b & 0x7F) << shift
            i, shift = i + 1, shift + 7
            if b < 0x80:
                return value, i

    i = 0
    while i < len(buf):
        key, i = varint(i)
        if key & 7 == 0:
            _, i = varint(i)
        elif key & 7 == 2:
            n, i = varint(i)
            if key >> 3 == field:
                return bytes(buf[i : i + n])
            i += n
        else:
            raise ValueError(f"unexpected protobuf wire type {key & 7}")
    raise KeyError(f"protobuf field {field} not found")


def build_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile the XLM-R ``nmt_nfkc`` precompiled charsmap (deterministic, offline)."""
    import sentencepiece as spm

    spm.set_min_log_level(2)  # the rule compiler logs at INFO to stderr
    single = {chr(cp): "".join(map(chr, out)) for cp, out in norm_map.items()}
    builtin = dict(spm.SentencePieceNormalizer(rule_name="nmt_nfkc").Decompile())
    changed = {k for k in single.keys() | {k for k in builtin if len(k) == 1}
               if single.get(k, k) != builtin.get(k, k)}  # fmt: skip

    banned = changed | {chr(c) for a, b in _LATE_SCRIPTS for c in range(a, b + 1)}

    def keep(rule: tuple[str, str]) -> bool:
        return len(rule[0]) > 1 and banned.isdisjoint(rule[0] + rule[1])

    rules = sorted(single.items()) + sorted(filter(keep, builtin.items()))
    spec = spm.SentencePieceNormalizer(norm_map=rules).serialized_normalizer_spec()
    charsmap = _proto_field(spec, 2)  # NormalizerSpec.precompiled_charsmap
    digest = hashlib.sha256(charsmap).hexdigest()
    if digest != REFERENCE_CHARSMAP_SHA256:
        logger.warning(
            "compiled charsmap %s differs from the XLM-R reference; rare characters may normalise "
            "differently (sentencepiece %s)",
            digest[:12],
            getattr(spm, "__version__", "?"),
        )
    return charsmap


def build_tokenizer(src: E5S1File, charsmap: bytes) -> Tokenizer:
    """Build the fast tokenizer: Unigram + charsmap + Metaspace + ``<s> $A </s>`` template."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    h = src.header
    mask_id = h.n_pieces - 1
    ids = {"bos": h.bos_id, "pad": h.pad_id, "eos": h.eos_id, "unk": h.unk_id, "mask": mask_id}
    for role, tok_id in ids.items():
        if src.pieces[tok_id] != SPECIAL_TOKENS[role]:
            raise ValueError(f"piece {tok_id} is {src.pieces[tok_id]!r}, expected {role} token")
    vocab = list(zip(src.pieces, src.scores.astype(float).tolist(), strict=True))
    tok = Tokenizer(models.Unigram(vocab, unk_id=h.unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, h.bos_id), (eos, h.eos_id)],
    )
    tok.add_special_tokens(
        [AddedToken(SPECIAL_TOKENS[r], special=True, normalized=False) for r in ids]
    )
    return tok


def tokenizer_configs(tokenizer_class: str, model_max_length: int) -> dict[str, dict]:
    """``tokenizer_config.json`` and ``special_tokens_map.json`` contents."""
    names = {f"{r}_token": t for r, t in SPECIAL_TOKENS.items()}
    names |= {"cls_token": SPECIAL_TOKENS["bos"], "sep_token": SPECIAL_TOKENS["eos"]}
    config = {
        "tokenizer_class": tokenizer_class,
        "model_max_length": model_max_length,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
        "add_prefix_space": True,
        **names,
    }
    return {TOKENIZER_CONFIG_FILE: config, "special_tokens_map.json": names}
