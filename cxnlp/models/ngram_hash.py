"""The n-gram tier's features and scores in numpy: what scikit-learn's
`HashingVectorizer(analyzer="char_wb", alternate_sign=False, norm=None, lowercase=True)`, then
`TfidfTransformer(sublinear_tf=True)` and a linear model's `decision_function` compute, to the last
bit, without importing scikit-learn (over a second of a model's load, for pandas, scipy.stats and
joblib it imports on the way) or scipy.sparse.

The n-grams are sliced from one UTF-8 buffer per batch and hashed together with a vectorised
MurmurHash3 (x86, 32-bit, seed 0), as scikit-learn hashes each one; sums run in the order
scikit-learn's loops run them (`np.bincount` adds in array order), so the float results are the
same. `tests/test_fast_and_store.py` checks it against scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def murmurhash3_32(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Signed 32-bit MurmurHash3 (seed 0) of each key `data[start:start + length]` (uint8 data),
    as `sklearn.utils.murmurhash3_32(key)` gives it."""
    h = np.zeros(len(starts), dtype=np.uint32)
    blocks = lengths // 4
    for j in range(int(blocks.max(initial=0))):
        on = np.flatnonzero(blocks > j)
        at = starts[on] + 4 * j
        k = data[at].astype(np.uint32)
        k |= data[at + 1].astype(np.uint32) << np.uint32(8)
        k |= data[at + 2].astype(np.uint32) << np.uint32(16)
        k |= data[at + 3].astype(np.uint32) << np.uint32(24)
        k = _rotl(k * _C1, 15) * _C2
        hj = _rotl(h[on] ^ k, 13)
        h[on] = hj * np.uint32(5) + np.uint32(0xE6546B64)
    tail = lengths & 3
    at = starts + 4 * blocks
    k = np.zeros(len(starts), dtype=np.uint32)
    for i in (2, 1, 0):
        on = tail > i
        k[on] ^= data[at[on] + i].astype(np.uint32) << np.uint32(8 * i)
    on = tail > 0
    h[on] ^= _rotl(k[on] * _C1, 15) * _C2
    h ^= lengths.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h.view(np.int32)


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each c in `counts`, concatenated."""
    ends = np.cumsum(counts)
    return np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - counts, counts)


def hashed_char_wb_counts(
    texts: Sequence[str], n_features: int, ngram_range: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, count) of each distinct hashed character n-gram of each text, rows in order
    and columns ascending within a row: the CSR matrix `HashingVectorizer` makes, its duplicates
    summed.

    As scikit-learn's `char_wb` analyser: the text lower-cased and split on whitespace, each word
    padded with a space on both sides, every n-gram of each length in `ngram_range` taken inside
    it (a padded word shorter than the smallest length counts once, whole); each n-gram hashed as
    UTF-8, its column `abs(hash) % n_features`."""
    min_n, max_n = ngram_range
    words: list[str] = []
    word_rows: list[int] = []
    for row, text in enumerate(texts):
        split = (
            text.lower().split()
        )  # whitespace runs: scikit-learn's collapse changes nothing here
        words.extend(split)
        word_rows.extend([row] * len(split))
    if not words:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    padded = " " + "  ".join(words) + " "  # " w1  w2 " = (" w1 ")(" w2 ")
    sizes = np.fromiter((len(w) + 2 for w in words), dtype=np.int64, count=len(words))
    word_starts = np.cumsum(sizes) - sizes
    word_rows_arr = np.asarray(word_rows, dtype=np.int64)
    gram_starts, gram_sizes, gram_rows = [], [], []
    for n in range(min_n, max_n + 1):
        fits = sizes >= n
        counts = np.where(fits, sizes - n + 1, 0)
        gram_starts.append(np.repeat(word_starts, counts) + _ragged_arange(counts))
        gram_sizes.append(np.full(int(counts.sum()), n, dtype=np.int64))
        gram_rows.append(np.repeat(word_rows_arr, counts))
        if n == min_n:  # a word shorter than the smallest n-gram: itself, once
            short = ~fits
            gram_starts.append(word_starts[short])
            gram_sizes.append(sizes[short])
            gram_rows.append(word_rows_arr[short])
    starts, lengths = np.concatenate(gram_starts), np.concatenate(gram_sizes)
    rows = np.concatenate(gram_rows)
    # Character offsets to UTF-8 byte offsets.
    code_points = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32)
    widths = 1 + (code_points >= 0x80) + (code_points >= 0x800) + (code_points >= 0x10000)
    byte_at = np.concatenate(([0], np.cumsum(widths, dtype=np.int64)))
    data = np.frombuffer(padded.encode("utf-8"), dtype=np.uint8)
    byte_starts = byte_at[starts]
    hashes = murmurhash3_32(data, byte_starts, byte_at[starts + lengths] - byte_starts)
    columns = np.abs(hashes.astype(np.int64)) % n_features  # abs(-2**31) % n as scikit-learn
    keys, counts = np.unique(rows * n_features + columns, return_counts=True)
    return keys // n_features, keys % n_features, counts.astype(np.float64)


def tfidf_linear_scores(
    texts: Sequence[str],
    n_features: int,
    ngram_range: tuple[int, int],
    idf: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
) -> np.ndarray:
    """`decision_function` of a linear model (`coef` (classes, n_features), `intercept`) on the
    sublinear, IDF-weighted, L2-normalised hashed n-gram counts of `texts`, float64 (n, classes)."""
    rows, columns, values = hashed_char_wb_counts(texts, n_features, ngram_range)
    n = len(texts)
    values = np.log(values)
    values += 1.0
    values *= idf[columns]
    squares = np.bincount(rows, weights=values * values, minlength=n)
    values /= np.where(squares == 0.0, 1.0, np.sqrt(squares))[rows]
    terms = values[:, None] * coef.T[columns]
    scores = np.stack(
        [np.bincount(rows, weights=terms[:, k], minlength=n) for k in range(coef.shape[0])],
        axis=1,
    )
    return scores + intercept
