"""rlcourse.checks: visible mode shows the values, hidden mode (the grader's hidden tests) shows only author text."""
from __future__ import annotations

import re

import pytest
import torch

from rlcourse import checks as C


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?", text)


@pytest.fixture(autouse=True)
def _visible_after_each_test():
    yield
    assert not C.is_hidden(), "a test left hidden mode on"


# ----------------------------------------------------------------------------- visible mode: as before
def test_visible_check_close_shows_expected_and_actual():
    msg = _message(C.check_close, torch.tensor([1.25, 2.5]), torch.tensor([1.25, 7.75]), "the loss", hint="Mask it.")
    assert msg.startswith("the loss is wrong.")
    assert "expected:" in msg and "got:" in msg
    assert "7.75" in msg and "2.5" in msg and "largest error 5.25" in msg
    assert msg.endswith("Mask it.")


def test_visible_messages_unchanged():
    assert _message(C.check_shape, torch.zeros(2, 3), (3, 2), "out") == \
        "out should have shape (3, 2), but it has shape (2, 3)."
    assert _message(C.check_close, torch.zeros(2), torch.zeros(3), "out") == \
        "out should have shape (3,), but it has shape (2,)."
    assert _message(C.check_scalar, torch.zeros(4), "loss").startswith(
        "loss should be a scalar (0-dim tensor), but it has shape (4,)")
    assert _message(C.check_tensor, [1.0], "out") == "out should be a torch.Tensor, but it is a list."
    assert _message(C.check_float, 0.5, 0.25, "r", hint="Think.") == "r: expected 0.25, got 0.5. Think."
    assert _message(C.check_float, "x", 0.25, "r") == "r should be a Python float, but it is a str."
    assert "nan" in _message(C.check_close, torch.tensor([float("nan")]), torch.tensor([0.0]), "out").lower()

    def raises_type_error():
        raise TypeError("secret 123")

    assert _message(C.check_raises, raises_type_error, ValueError, "f") == \
        "f should raise ValueError, but raised TypeError: secret 123"
    assert _message(C.check_raises, lambda: None, ValueError, "f") == \
        "f should raise ValueError, but returned normally."
    assert _message(C.check, False, "author text") == "author text"
    assert _message(C.fail, "author text") == "author text"


def test_passing_checks_pass_in_both_modes():
    for ctx in (lambda: __import__("contextlib").nullcontext(), C.hidden_checks):
        with ctx():
            C.check(True, "never shown")
            C.check_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]), "x")
            C.check_shape(torch.zeros(2, 3), (2, 3), "x")
            C.check_scalar(torch.tensor(1.0), "x")
            C.check_float(0.1 + 0.2, 0.3, "x")
            C.check_raises(lambda: int("no"), ValueError, "x")
            C.check_no_grad(torch.zeros(2, requires_grad=True), "x")


# ----------------------------------------------------------------------------- hidden mode: author text only
def test_hidden_check_close_shows_neither_expected_nor_actual():
    actual, expected = torch.tensor([1.25, 2.5]), torch.tensor([1.25, 7.75])
    with C.hidden_checks():
        msg = _message(C.check_close, actual, expected, "the loss", hint="Mask it.")
    assert msg == "the loss is wrong. Mask it."
    assert _numbers(msg) == []
    for value in ("1.25", "2.5", "7.75", "5.25"):
        assert value not in msg
    assert "expected" not in msg and "got" not in msg


def test_hidden_check_close_hides_shapes_and_nan_values():
    with C.hidden_checks():
        shape_msg = _message(C.check_close, torch.zeros(2, 3), torch.zeros(3, 4), "out", hint="h.")
        nan_msg = _message(C.check_close, torch.tensor([3.5, float("nan")]), torch.tensor([3.5, 9.0]), "out",
                           hint="Use logsigmoid.")
        tensor_msg = _message(C.check_close, [1.0, 2.0], torch.zeros(2), "out")
    assert shape_msg == "out has the wrong shape."
    assert nan_msg == "out contains NaN or inf. Use logsigmoid."
    assert tensor_msg == "out should be a torch.Tensor, but it is not."
    for msg in (shape_msg, nan_msg, tensor_msg):
        assert _numbers(msg) == [], msg


def test_hidden_other_checks_show_only_author_text():
    def raises_runtime_error():
        raise RuntimeError("size of tensor a (17) must match tensor b (19)")

    with C.hidden_checks():
        msgs = {
            "shape": _message(C.check_shape, torch.zeros(17, 19), (19, 17), "out"),
            "scalar": _message(C.check_scalar, torch.zeros(17), "loss"),
            "float": _message(C.check_float, 0.625, 0.375, "r", hint="take the last integer."),
            "float_type": _message(C.check_float, "0.625", 0.375, "r"),
            "raises_other": _message(C.check_raises, raises_runtime_error, ValueError, "f with mismatched shapes"),
            "raises_none": _message(C.check_raises, lambda: 17, ValueError, "f with mismatched shapes"),
            "no_grad": None,
        }
        x = torch.zeros(2, requires_grad=True)
        (x * 3.5).sum().backward()
        msgs["no_grad"] = _message(C.check_no_grad, x, "the returns")
        msgs["check"] = _message(C.check, False, "each tied label should beat every label below it.")
        msgs["fail"] = _message(C.fail, "author text")
    assert msgs["shape"] == "out has the wrong shape."
    assert msgs["scalar"].startswith("loss should be a scalar (0-dim tensor), but it is not")
    assert msgs["float"] == "r is wrong. take the last integer."
    assert msgs["float_type"] == "r should be a Python float, but it is not."
    assert msgs["raises_other"] == "f with mismatched shapes should raise ValueError, but raised a different exception."
    assert msgs["raises_none"] == "f with mismatched shapes should raise ValueError, but returned normally."
    assert msgs["check"] == "each tied label should beat every label below it."
    assert msgs["fail"] == "author text"
    for name, msg in msgs.items():
        assert _numbers(msg) in ([], ["0"]), f"{name}: {msg}"  # "0-dim" is the only number allowed
        assert "17" not in msg and "19" not in msg and "RuntimeError" not in msg and "str" not in msg.split()


def test_hidden_check_raises_leaves_no_chained_exception():
    def raises_runtime_error():
        raise RuntimeError("hidden input (17, 19)")

    with C.hidden_checks():
        with pytest.raises(AssertionError) as info:
            C.check_raises(raises_runtime_error, ValueError, "f")
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_hidden_check_own_function_hides_the_module():
    from rlcourse import reference

    fn = next(getattr(reference, n) for n in dir(reference) if callable(getattr(reference, n))
              and getattr(getattr(reference, n), "__module__", "").startswith("rlcourse"))
    with C.hidden_checks():
        msg = _message(C.check_own_function, fn, "sft_loss")
    assert "rlcourse" not in msg and "helper package" in msg


def test_hidden_mode_is_restored_and_nests():
    assert not C.is_hidden()
    with C.hidden_checks():
        assert C.is_hidden()
        with C.hidden_checks():
            assert C.is_hidden()
        assert C.is_hidden()
    assert not C.is_hidden()
    with pytest.raises(AssertionError):
        with C.hidden_checks():
            C.check(False, "boom")
    assert not C.is_hidden()
    # visible again: values come back
    assert "7.75" in _message(C.check_close, torch.tensor([1.0]), torch.tensor([7.75]), "x")


def test_set_hidden_returns_the_previous_mode():
    mode = C._MODE
    assert C.set_hidden(True) is False
    try:
        assert C.is_hidden()
        assert C.set_hidden(True) is True
        assert "7.75" not in _message(C.check_close, torch.tensor([1.0]), torch.tensor([7.75]), "x")
    finally:
        assert C.set_hidden(False) is True
    assert C._MODE is mode, "the mode must change in place (the dict is never rebound)"
