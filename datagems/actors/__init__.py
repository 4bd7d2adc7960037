"""The engine of a replica: pykka actors that find work, run records and write progress.

``engine.Engine`` starts the call loop and the ``Supervisor``, which owns the
``CStoreWriter``, the ``Poller`` and one ``JobActor`` per range being worked; records run
as coroutines on the ``CallLoop`` (``record.py``). Messages are in ``messages.py``;
``docs/ARCHITECTURE.md`` has the map.
"""
