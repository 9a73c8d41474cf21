"""Generated from ``proto/protos/shared`` by ``gen_proto.py``: do not edit."""
