"""Base classes for small record types: equality, hashing and repr derived from their fields.

The archive and check modules used ``@dataclass`` for their records; building a dataclass
runs ``exec`` at import (a frozen one with slots about 0.9 ms), and the 27 of them cost
every data command (import-layer, diff, check...) some 25 ms before it read a byte.  A
frozen instance also set each field through ``object.__setattr__``.  These records write
``__slots__`` and ``__init__`` by hand instead; what dataclasses added on top lives here.

Fields are the names a record class and its bases annotate, in declaration order.
"""

from __future__ import annotations

from typing import Any, ClassVar

_FIELDS: dict[type, tuple[str, ...]] = {}


class PlainRecord:
    """A mutable record: compared field by field, unhashable (as ``@dataclass`` makes it)."""

    __slots__ = ()
    __hash__: ClassVar[None] = None  # type: ignore[assignment]

    def _field_names(self) -> tuple[str, ...]:
        cls = type(self)
        names = _FIELDS.get(cls)
        if names is None:
            seen: dict[str, None] = {}
            for klass in reversed(cls.__mro__):
                # not inspect.get_annotations: importing inspect costs 7 ms of start-up
                seen.update(dict.fromkeys(klass.__dict__.get("__annotations__", {})))  # noqa: RUF063
            names = _FIELDS[cls] = tuple(name for name in seen if not name.startswith("__"))
        return names

    def _field_values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._field_names())

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, PlainRecord)
        return self._field_values() == other._field_values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._field_names())
        return f"{type(self).__qualname__}({fields})"


class FrozenRecord(PlainRecord):
    """A record treated as immutable (nothing assigns its fields after ``__init__``): hashable."""

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._field_values())
