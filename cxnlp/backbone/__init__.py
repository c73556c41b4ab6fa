"""The encoder a transformer model is built on: the E5S1 file reader (`e5s1`), the tokenizer rebuilt
from it (`tokenizer`), the cached Hugging Face directory built from both (`build`), what runs that
directory without importing `transformers` (`runtime`), and what a model must know about any
backbone to run it (`spec`)."""
