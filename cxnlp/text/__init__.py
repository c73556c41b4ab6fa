"""Text handling: clean-up shared by every step (`clean`), the Arabic-script letter tables
(`script`), normalisation (`normalize`) and language identification (`langid`).

The public entry points are `cxnlp.normalize` and `cxnlp.detect_language`."""
