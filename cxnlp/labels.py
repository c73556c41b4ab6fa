"""The label sets every part of cxnlp agrees on."""

SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
LANGS: tuple[str, ...] = ("fa", "ar", "en")
