"""Tar streams in and out of layers: decoding, tar-split, planning, applying, exporting.

Modules (imports run one way, top to bottom):
  members.py      the parsed tar header type shared by everything below
  compression.py  sniffing and streaming (de)compression
  tarsplit.py     tar reader that records tar-split metadata; reassembly; CRC-64
  plan.py         pure: tar members -> planned filesystem actions (whiteouts, safety)
  apply.py        the only module that performs planned actions on disk
"""
