"""The training engine and its parts: the plan, the step's meter, optimizers, device and threads."""
