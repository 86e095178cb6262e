"""Text in: corpora (embedded, files, named downloads) and tokenizers. No torch here."""
