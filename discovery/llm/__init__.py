"""Models: the litellm client the search calls, and the embedded local model under local/."""

from discovery.llm.client import LLMClient, LLMFailure, ModelSpec, Reply, ready_specs

__all__ = ["LLMClient", "LLMFailure", "ModelSpec", "Reply", "ready_specs"]
