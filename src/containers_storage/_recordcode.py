"""Record converters generated from the field tables in ``records.py``: do not edit.

Checked in (rather than compiled with ``exec`` at run time) so that Python's
bytecode cache saves every CLI run the compile.  A unit test fails when this
file is out of date; regenerate it with::

    python -m containers_storage.records > src/containers_storage/_recordcode.py
"""
# ruff: noqa
# mypy: ignore-errors

from .records import Timestamp, _fail, _idmaps, _int_or_fail
from .records import sorted_map as _sorted_map

_new = object.__new__
_ZERO = Timestamp.ZERO_TEXT


def layer_from_json(cls, obj):
    g = obj.get
    r = _new(cls)
    v = g('id')
    r.id = v if type(v) is str else _fail('id', v) if v is None else _fail('id', v)
    v = g('names')
    r.names = [] if v is None else v if type(v) is list else _fail('names', v)
    v = g('parent')
    r.parent = v if type(v) is str else "" if v is None else _fail('parent', v)
    v = g('metadata')
    r.metadata = v if type(v) is str else "" if v is None else _fail('metadata', v)
    v = g('mountlabel')
    r.mount_label = v if type(v) is str else "" if v is None else _fail('mountlabel', v)
    v = g('created')
    r.created = v if type(v) is str else _ZERO if v is None else _fail('created', v)
    v = g('compressed-diff-digest')
    r.compressed_digest = v if type(v) is str else "" if v is None else _fail('compressed-diff-digest', v)
    v = g('compressed-size')
    r.compressed_size = v if type(v) is int else 0 if v is None else _int_or_fail('compressed-size', v)
    v = g('diff-digest')
    r.uncompressed_digest = v if type(v) is str else "" if v is None else _fail('diff-digest', v)
    v = g('toc-digest')
    r.toc_digest = v if type(v) is str else "" if v is None else _fail('toc-digest', v)
    v = g('diff-size')
    r.uncompressed_size = v if type(v) is int else 0 if v is None else _int_or_fail('diff-size', v)
    v = g('compression')
    r.compression = v if type(v) is int else 0 if v is None else _int_or_fail('compression', v)
    v = g('uidset')
    r.uidset = [] if v is None else v if type(v) is list else _fail('uidset', v)
    v = g('gidset')
    r.gidset = [] if v is None else v if type(v) is list else _fail('gidset', v)
    v = g('flags')
    r.flags = {} if v is None else v if type(v) is dict else _fail('flags', v)
    v = g('uidmap')
    r.uidmap = [] if v is None else _idmaps(v) if type(v) is list else _fail('uidmap', v)
    v = g('gidmap')
    r.gidmap = [] if v is None else _idmaps(v) if type(v) is list else _fail('gidmap', v)
    v = g('big-data-names')
    r.big_data_names = [] if v is None else v if type(v) is list else _fail('big-data-names', v)
    r.mount_point = ''
    r.mount_count = 0
    r.read_only = False
    r.volatile = False
    return r


def layer_to_json(self):
    out = {}
    out['id'] = self.id
    if self.names: out['names'] = self.names
    if self.parent: out['parent'] = self.parent
    if self.metadata: out['metadata'] = self.metadata
    if self.mount_label: out['mountlabel'] = self.mount_label
    out['created'] = self.created
    if self.compressed_digest: out['compressed-diff-digest'] = self.compressed_digest
    if self.compressed_size: out['compressed-size'] = self.compressed_size
    if self.uncompressed_digest: out['diff-digest'] = self.uncompressed_digest
    if self.toc_digest: out['toc-digest'] = self.toc_digest
    if self.uncompressed_size: out['diff-size'] = self.uncompressed_size
    if self.compression: out['compression'] = self.compression
    if self.uidset: out['uidset'] = self.uidset
    if self.gidset: out['gidset'] = self.gidset
    v = self.flags
    if v: out['flags'] = v if len(v) == 1 else _sorted_map(v)
    if self.uidmap: out['uidmap'] = [m.to_json() for m in self.uidmap]
    if self.gidmap: out['gidmap'] = [m.to_json() for m in self.gidmap]
    if self.big_data_names: out['big-data-names'] = self.big_data_names
    return out


def layer_copy(self):
    n = _new(type(self))
    n.id = self.id
    n.names = self.names
    n.parent = self.parent
    n.metadata = self.metadata
    n.mount_label = self.mount_label
    n.created = self.created
    n.compressed_digest = self.compressed_digest
    n.compressed_size = self.compressed_size
    n.uncompressed_digest = self.uncompressed_digest
    n.toc_digest = self.toc_digest
    n.uncompressed_size = self.uncompressed_size
    n.compression = self.compression
    n.uidset = self.uidset
    n.gidset = self.gidset
    n.flags = self.flags
    n.uidmap = self.uidmap
    n.gidmap = self.gidmap
    n.big_data_names = self.big_data_names
    n.mount_point = self.mount_point
    n.mount_count = self.mount_count
    n.read_only = self.read_only
    n.volatile = self.volatile
    return n


def image_from_json(cls, obj):
    g = obj.get
    r = _new(cls)
    v = g('id')
    r.id = v if type(v) is str else _fail('id', v) if v is None else _fail('id', v)
    v = g('digest')
    r.digest = v if type(v) is str else "" if v is None else _fail('digest', v)
    v = g('names')
    r.names = [] if v is None else v if type(v) is list else _fail('names', v)
    v = g('names-history')
    r.names_history = [] if v is None else v if type(v) is list else _fail('names-history', v)
    v = g('layer')
    r.top_layer = v if type(v) is str else "" if v is None else _fail('layer', v)
    v = g('mapped-layers')
    r.mapped_top_layers = [] if v is None else v if type(v) is list else _fail('mapped-layers', v)
    v = g('metadata')
    r.metadata = v if type(v) is str else "" if v is None else _fail('metadata', v)
    v = g('big-data-names')
    r.big_data_names = [] if v is None else v if type(v) is list else _fail('big-data-names', v)
    v = g('big-data-sizes')
    r.big_data_sizes = {} if v is None else v if type(v) is dict else _fail('big-data-sizes', v)
    v = g('big-data-digests')
    r.big_data_digests = {} if v is None else v if type(v) is dict else _fail('big-data-digests', v)
    v = g('created')
    r.created = v if type(v) is str else _ZERO if v is None else _fail('created', v)
    v = g('flags')
    r.flags = {} if v is None else v if type(v) is dict else _fail('flags', v)
    r.digests = ()
    r.read_only = False
    r.recompute_digests()
    return r


def image_to_json(self):
    out = {}
    out['id'] = self.id
    if self.digest: out['digest'] = self.digest
    if self.names: out['names'] = self.names
    if self.names_history: out['names-history'] = self.names_history
    if self.top_layer: out['layer'] = self.top_layer
    if self.mapped_top_layers: out['mapped-layers'] = self.mapped_top_layers
    if self.metadata: out['metadata'] = self.metadata
    if self.big_data_names: out['big-data-names'] = self.big_data_names
    v = self.big_data_sizes
    if v: out['big-data-sizes'] = v if len(v) == 1 else _sorted_map(v)
    v = self.big_data_digests
    if v: out['big-data-digests'] = v if len(v) == 1 else _sorted_map(v)
    out['created'] = self.created
    v = self.flags
    if v: out['flags'] = v if len(v) == 1 else _sorted_map(v)
    return out


def image_copy(self):
    n = _new(type(self))
    n.id = self.id
    n.digest = self.digest
    n.names = self.names
    n.names_history = self.names_history
    n.top_layer = self.top_layer
    n.mapped_top_layers = self.mapped_top_layers
    n.metadata = self.metadata
    n.big_data_names = self.big_data_names
    n.big_data_sizes = self.big_data_sizes
    n.big_data_digests = self.big_data_digests
    n.created = self.created
    n.flags = self.flags
    n.digests = self.digests
    n.read_only = self.read_only
    return n


def container_from_json(cls, obj):
    g = obj.get
    r = _new(cls)
    v = g('id')
    r.id = v if type(v) is str else _fail('id', v) if v is None else _fail('id', v)
    v = g('names')
    r.names = [] if v is None else v if type(v) is list else _fail('names', v)
    v = g('image')
    r.image = v if type(v) is str else "" if v is None else _fail('image', v)
    v = g('layer')
    r.layer = v if type(v) is str else "" if v is None else _fail('layer', v)
    v = g('metadata')
    r.metadata = v if type(v) is str else "" if v is None else _fail('metadata', v)
    v = g('big-data-names')
    r.big_data_names = [] if v is None else v if type(v) is list else _fail('big-data-names', v)
    v = g('big-data-sizes')
    r.big_data_sizes = {} if v is None else v if type(v) is dict else _fail('big-data-sizes', v)
    v = g('big-data-digests')
    r.big_data_digests = {} if v is None else v if type(v) is dict else _fail('big-data-digests', v)
    v = g('created')
    r.created = v if type(v) is str else _ZERO if v is None else _fail('created', v)
    v = g('uidmap')
    r.uidmap = [] if v is None else _idmaps(v) if type(v) is list else _fail('uidmap', v)
    v = g('gidmap')
    r.gidmap = [] if v is None else _idmaps(v) if type(v) is list else _fail('gidmap', v)
    v = g('flags')
    r.flags = {} if v is None else v if type(v) is dict else _fail('flags', v)
    r.volatile_file = False
    return r


def container_to_json(self):
    out = {}
    out['id'] = self.id
    if self.names: out['names'] = self.names
    out['image'] = self.image
    out['layer'] = self.layer
    if self.metadata: out['metadata'] = self.metadata
    if self.big_data_names: out['big-data-names'] = self.big_data_names
    v = self.big_data_sizes
    if v: out['big-data-sizes'] = v if len(v) == 1 else _sorted_map(v)
    v = self.big_data_digests
    if v: out['big-data-digests'] = v if len(v) == 1 else _sorted_map(v)
    out['created'] = self.created
    if self.uidmap: out['uidmap'] = [m.to_json() for m in self.uidmap]
    if self.gidmap: out['gidmap'] = [m.to_json() for m in self.gidmap]
    v = self.flags
    if v: out['flags'] = v if len(v) == 1 else _sorted_map(v)
    return out


def container_copy(self):
    n = _new(type(self))
    n.id = self.id
    n.names = self.names
    n.image = self.image
    n.layer = self.layer
    n.metadata = self.metadata
    n.big_data_names = self.big_data_names
    n.big_data_sizes = self.big_data_sizes
    n.big_data_digests = self.big_data_digests
    n.created = self.created
    n.uidmap = self.uidmap
    n.gidmap = self.gidmap
    n.flags = self.flags
    n.volatile_file = self.volatile_file
    return n
