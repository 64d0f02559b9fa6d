"""Results: the run model and its vocabulary (model.py), and the SQLite store (store.py)."""
