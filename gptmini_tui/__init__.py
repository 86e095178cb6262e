"""GPTMini's terminal training console (Textual).

Only UI lives here: the app subscribes to the engine's typed events and calls
the public API of ``gptmini.engine``, ``gptmini.sampling``,
``gptmini.checkpoint`` and ``gptmini.metrics``.
"""
