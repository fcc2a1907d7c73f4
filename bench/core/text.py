"""The text of a prompt or a completion, whether the data is plain (strings) or conversational (message lists)."""
from __future__ import annotations


def completion_text(c) -> str:
    """A completion as text: a string as it is, a conversation's last message's content."""
    return c if isinstance(c, str) else str(c[-1]["content"])


def prompt_text(prompt) -> str:
    """A prompt as plain text (the last user turn of a conversation), for evaluators and judges."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else str(prompt[-1]["content"])


def text_of(value) -> str:
    """Every message's content joined (for text features such as length), or the string itself."""
    if isinstance(value, str):
        return value
    return "\n".join(str(m.get("content", "")) for m in value)


def as_completion(text: str, like):
    """A sampled text in the form of the dataset's completions (plain string or one assistant message)."""
    return text if isinstance(like, str) else [{"role": "assistant", "content": text}]
