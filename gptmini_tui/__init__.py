"""GPTMini's terminal training console (Textual).

Only UI lives here: the app subscribes to the engine's typed events and calls
the public API of the library (``gptmini.session``, ``gptmini.sample``,
``gptmini.ckpt``, ``gptmini.metrics``).
"""
