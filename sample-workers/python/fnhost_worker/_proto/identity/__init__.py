"""Generated from ``proto/protos/identity`` by ``gen_proto.py``: do not edit."""
