"""Adapters: the outside world (coturn, STUN servers, the object store) behind small interfaces."""
