"""Data made ready for a task: the token cache and split (``tokens``), windows and batches (``windows``)."""
