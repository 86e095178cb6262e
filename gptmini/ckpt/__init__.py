"""A run folder on disk: its layout, atomic files, checkpoints (store, seal, state, listing), the save
thread and the folder's lock."""
