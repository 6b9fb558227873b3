"""Global settings Keras programs set through ``keras.backend``.

- ``image_data_format()``: the ``data_format`` that image layers take when given None
  ('channels_last' unless set);
- ``floatx()``: the dtype of inputs and weights when none is given ('float32');
- ``epsilon()``: the fuzz factor Keras uses in numeric expressions (1e-7);
- ``clear_session()``: resets the counters behind automatic layer names.
"""

from __future__ import annotations

from .backends._args import fail

__all__ = ["image_data_format", "set_image_data_format", "floatx", "set_floatx", "epsilon",
           "set_epsilon", "clear_session"]

_state = {"image_data_format": "channels_last", "floatx": "float32", "epsilon": 1e-7}


def image_data_format() -> str:
    """'channels_last' or 'channels_first'."""
    return _state["image_data_format"]


def set_image_data_format(data_format: str) -> None:
    """Set the default ``data_format`` of image layers."""
    if data_format not in ("channels_last", "channels_first"):
        raise fail("data_format", "'channels_last' or 'channels_first'", data_format)
    _state["image_data_format"] = data_format


def floatx() -> str:
    """The default float dtype, 'float32' or 'float64'."""
    return _state["floatx"]


def set_floatx(value: str) -> None:
    """Set the default float dtype ('float32' or 'float64'; fastconv computes in no other)."""
    if value not in ("float32", "float64"):
        raise fail("value", "'float32' or 'float64'", value)
    _state["floatx"] = value


def epsilon() -> float:
    return _state["epsilon"]


def set_epsilon(value: float) -> None:
    _state["epsilon"] = float(value)


def clear_session() -> None:
    """Forget the automatic layer names given so far ('dense', 'dense_1', ... start again)."""
    from . import layers

    with layers._name_lock:
        layers._name_counts.clear()
