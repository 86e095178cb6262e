"""GPTMini's terminal training console (Textual).

Only UI lives here: the app reaches a run through ``gptmini.session.RunSession`` (its events and requests) and
uses the library's shared helpers (``events``, ``fmt``, ``history``, ``runs``, ``sample``, the option table);
docs/ARCHITECTURE.md says which and why.
"""
