"""Parts of the LLM-judge evaluator (``evaluators/llm_judge.py``): verdict parsing, prompt rendering, disk cache and
the OpenAI-compatible client with retries. Each is importable and testable on its own."""
