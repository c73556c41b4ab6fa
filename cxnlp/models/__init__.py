"""Sentiment models: what every kind shares (`base`), the kinds (`fast`, `transformer`, `blend`),
probability calibration (`calibration`), scoring against gold labels (`evaluation`) and finding and
loading model directories (`store`; the public entry point is `cxnlp.load`)."""
