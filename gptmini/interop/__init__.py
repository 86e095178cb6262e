"""Other tools' formats: GPT-2 weights in (``pretrained``), exports out (weights, Hugging Face, GGUF for
llama.cpp and Ollama)."""
