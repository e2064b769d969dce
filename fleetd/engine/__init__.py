"""The engine: the elected leader that places units on machines (pure scheduler + reconcile loop)."""
