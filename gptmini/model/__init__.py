"""The model: its one config dataclass (``config``), the GPT itself (``gpt``)."""
