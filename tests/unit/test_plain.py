"""The record bases that replace dataclasses on the data path."""

from __future__ import annotations

import pytest

from containers_storage.archive import plan as p
from containers_storage.check import CheckReport


def test_records_compare_by_type_and_fields() -> None:
    assert p.RemoveTree("e", "a") == p.RemoveTree("e", "a")
    assert p.RemoveTree("e", "a") != p.RemoveTree("e", "b")
    # Same field values, different action: never equal (a tuple-based record would be).
    assert p.RemoveTree("e", "a") != p.ClearOpaque("e", "a")


def test_frozen_records_hash_and_mutable_ones_do_not() -> None:
    attrs = p.Attrs(0, 0, 0o644, 1, 1)
    assert hash(attrs) == hash(p.Attrs(0, 0, 0o644, 1, 1))
    assert len({p.MakeDir("e", "d", attrs), p.MakeDir("e", "d", attrs)}) == 1
    with pytest.raises(TypeError):
        hash(CheckReport())


def test_repr_names_the_fields() -> None:
    assert repr(p.RemoveTree("e", "a")) == "RemoveTree(entry='e', path='a')"
    report = CheckReport(layers={"x": ["gone"]})
    assert repr(report).startswith("CheckReport(layers={'x': ['gone']}, ro_layers={}")


def test_slots_only() -> None:
    with pytest.raises(AttributeError):
        p.RemoveTree("e", "a").extra = 1  # type: ignore[attr-defined]


def test_fields_come_from_annotations_in_order_through_bases() -> None:
    link = p.MakeHardlink("e", "a", "b", p.Attrs(0, 0, 0o644, 1, 1))
    assert repr(link).startswith("MakeHardlink(entry='e', path='a', target='b', attrs=Attrs(uid=0, gid=0,")
    assert link != p.MakeSymlink("e", "a", "b", link.attrs)
    assert link == p.MakeHardlink("e", "a", "b", p.Attrs(0, 0, 0o644, 1, 1))
