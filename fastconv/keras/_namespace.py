"""How ``fastconv.keras`` modules answer for Keras names fastconv lacks."""

from __future__ import annotations

import dis
import sys

_IMPORT_FROM = dis.opmap.get("IMPORT_FROM")


class NotImplementedInFastconv(AttributeError):
    """A Keras name that fastconv does not implement (yet)."""


def _in_from_import(depth: int) -> bool:
    """True when the caller ``depth`` frames up is executing ``from m import name``."""
    try:
        frame = sys._getframe(depth)
        return frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM
    except Exception:  # pragma: no cover - other interpreters
        return False


def missing(module: str, name: str) -> Exception:
    """The error for ``module.name``, a Keras name that fastconv lacks: ImportError inside
    ``from module import name`` (whose message Python would otherwise replace), an
    AttributeError (so ``hasattr`` answers False) everywhere else."""
    message = (f"fastconv does not implement {module.replace('fastconv.', '')}.{name} yet "
               f"(or it is not a Keras name): module {module!r} has no attribute {name!r}. "
               "The README lists what fastconv has.")
    if _in_from_import(3):
        return ImportError(message, name=module)
    return NotImplementedInFastconv(message)



def module_getattr(module: str, source=None):
    """The ``__getattr__`` of a ``fastconv.keras`` module: a public name of ``source``
    (the fastconv module it mirrors, if any), else :func:`missing`'s error."""

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if source is not None and not name.startswith("_"):
            value = getattr(source, name, None)
            if value is not None:
                return value
        raise missing(module, name)

    return __getattr__
