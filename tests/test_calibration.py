"""Tests for cxnlp.models.calibration: softmax with temperatures, temperature fitting, ECE."""

from __future__ import annotations

import numpy as np
import pytest

from cxnlp.models.calibration import expected_calibration_error, fit_temperature, softmax

LOGITS = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [-3.0, 4.0, 1.0], [1000.0, 999.0, 0.0]])


def _reference_softmax(row: np.ndarray, temperature: float) -> np.ndarray:
    exp = np.exp((row - row.max()) / temperature)
    return exp / exp.sum()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_softmax_scalar_temperature_matches_the_formula(temperature: float) -> None:
    probs = softmax(LOGITS, temperature)
    expected = np.stack([_reference_softmax(row, temperature) for row in LOGITS])
    np.testing.assert_allclose(probs, expected, rtol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert np.isfinite(probs).all()  # the 1000-logit row does not overflow


def test_softmax_higher_temperature_is_less_confident() -> None:
    cold, warm = softmax(LOGITS, 0.5), softmax(LOGITS, 3.0)
    varied = [0, 2]  # rows whose logits differ
    assert (cold[varied].max(axis=1) > warm[varied].max(axis=1)).all()
    np.testing.assert_array_equal(cold.argmax(axis=1), warm.argmax(axis=1))


@pytest.mark.parametrize("shape", [(4, 1), (4,)], ids=["column", "flat"])
def test_softmax_one_temperature_per_row(shape: tuple[int, ...]) -> None:
    temperatures = np.array([0.5, 1.0, 2.0, 4.0])
    probs = softmax(LOGITS, temperatures.reshape(shape))
    for row, logits, temperature in zip(probs, LOGITS, temperatures, strict=True):
        np.testing.assert_allclose(row, _reference_softmax(logits, temperature), rtol=1e-12)


def test_softmax_flat_temperatures_on_three_rows_scale_rows_not_columns() -> None:
    # Regression: with as many rows as classes, a (n,) array broadcast silently over the columns.
    logits, temperatures = LOGITS[:3], np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(
        softmax(logits, temperatures), softmax(logits, temperatures[:, None])
    )


def test_softmax_leaves_its_input_alone() -> None:
    logits = LOGITS.copy()
    softmax(logits, 2.0)
    np.testing.assert_array_equal(logits, LOGITS)


def _synthetic(true_temperature: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / true_temperature): the NLL is lowest there."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=4.0, size=(n, 3))
    probs = softmax(logits, true_temperature)
    labels = (rng.random((n, 1)) > probs.cumsum(axis=1)).sum(axis=1)
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.0, 3.0])
def test_fit_temperature_recovers_a_known_temperature(true_temperature: float) -> None:
    logits, labels = _synthetic(true_temperature, n=20_000, seed=int(true_temperature * 10))
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.1)


def test_fit_temperature_lowers_the_nll() -> None:
    logits, labels = _synthetic(2.0, n=2000, seed=1)

    def nll(t: float) -> float:
        return float(-np.log(softmax(logits, t)[np.arange(len(labels)), labels]).mean())

    fitted = fit_temperature(logits, labels)
    assert nll(fitted) < nll(1.0)
    assert nll(fitted) <= min(nll(fitted * 0.9), nll(fitted * 1.1))


def test_fit_temperature_no_examples() -> None:
    with pytest.raises(ValueError, match="no examples"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int))


def _reference_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    total = 0.0
    for low in np.arange(n_bins) / n_bins:
        high = low + 1 / n_bins
        in_bin = (confidence > low) & (confidence <= high)
        if low == 0:
            in_bin |= confidence == 0
        if in_bin.any():
            total += (
                in_bin.sum() / len(labels) * abs(correct[in_bin].mean() - confidence[in_bin].mean())
            )
    return total


def test_ece_hand_computed() -> None:
    # Two texts at confidence 0.9 (one right) and two at 0.6 (both right), 10 bins:
    # 0.5 * |0.5 - 0.9| + 0.5 * |1.0 - 0.6| = 0.4.
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.2, 0.6, 0.2]])
    labels = np.array([0, 2, 1, 1])
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.4)


def test_ece_zero_when_confidence_matches_accuracy() -> None:
    probs = np.tile([0.8, 0.1, 0.1], (10, 1))
    labels = np.array([0] * 8 + [1, 2])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n_bins", [5, 15])
def test_ece_matches_a_plain_implementation(n_bins: int) -> None:
    logits, labels = _synthetic(1.0, n=500, seed=7)
    probs = softmax(logits, 0.7)  # overconfident
    assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(
        _reference_ece(probs, labels, n_bins)
    )


def test_ece_temperature_scaling_improves_an_overconfident_model() -> None:
    logits, labels = _synthetic(2.0, n=5000, seed=3)
    before = expected_calibration_error(softmax(logits, 1.0), labels)
    after = expected_calibration_error(softmax(logits, fit_temperature(logits, labels)), labels)
    assert after < before


def test_ece_of_nothing_is_nan() -> None:
    assert np.isnan(expected_calibration_error(np.zeros((0, 3)), np.zeros(0, dtype=int)))


def test_log_softmax_is_scipys_to_the_bit() -> None:
    from scipy.special import log_softmax as scipy_log_softmax

    from cxnlp.models.calibration import log_softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 5, (500, 3))
    logits[:3] = [[np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf], [np.nan, 1.0, 2.0]]
    for x, axis in ((logits, 1), (logits.T, 0), (logits.astype(np.float32), 1)):
        with np.errstate(invalid="ignore"):
            ours, theirs = log_softmax(x, axis=axis), scipy_log_softmax(x, axis=axis)
        assert ours.dtype == theirs.dtype
        assert np.array_equal(ours, theirs, equal_nan=True)
