"""The LLM client: any litellm provider, with tenacity retries, per-request seeds, and usage accounting."""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of the run's ensemble, with its sampling weight."""

    name: str  # a litellm model string, e.g. gpt-4o-mini, anthropic/claude-3-5-haiku-latest, openai/<name>
    weight: float = 1.0
    api_base: str | None = None
    api_key: str | None = None  # only for servers that need a dummy key; real keys come from the environment

    @classmethod
    def parse(cls, text: str, api_base: str | None = None) -> ModelSpec:
        """Parse NAME or NAME=WEIGHT from the command line."""
        name, _, weight = text.partition("=")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(
                f"model weight in {text!r} is not a number; write NAME=WEIGHT, e.g. gpt-4o-mini=0.7"
            ) from None
        if value <= 0:
            raise ValueError(f"model weight in {text!r} must be positive")
        return cls(name=name.strip(), weight=value, api_base=api_base)


@dataclasses.dataclass(frozen=True)
class Reply:
    """A good reply: its text and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    latency_s: float

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
        }


class LLMFailure(Exception):
    """A call that gave no usable reply. `status` is empty, refused or error; `fatal` stops the run."""

    def __init__(self, status: str, message: str, fatal: bool = False, usage: dict | None = None):
        super().__init__(message)
        self.status = status
        self.fatal = fatal
        self.usage = usage or {}


def _litellm():
    """Import litellm lazily (about 3 s) and without its price-list download."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def ready_specs(models: list[ModelSpec]) -> list[ModelSpec]:
    """Check each model's provider and keys before the run starts; UserError names what is missing."""
    from discovery.errors import UserError

    litellm = _litellm()
    ready = []
    for model in models:
        try:
            _, provider, _, _ = litellm.get_llm_provider(model.name, api_base=model.api_base)
        except Exception:  # noqa: BLE001 - litellm raises BadRequestError for unknown names
            raise UserError(
                f"unknown model {model.name!r}: write it as provider/model, e.g. openai/gpt-4o-mini, "
                "anthropic/claude-3-5-haiku-latest, ollama/qwen2.5-coder, or openai/<name> with --api-base"
            ) from None
        check = litellm.validate_environment(model=model.name, api_base=model.api_base)
        # A *_API_BASE has a default (e.g. Ollama on localhost); only keys are required.
        missing = [k for k in check.get("missing_keys", []) if not k.endswith("_API_BASE")]
        if missing and model.api_base and provider == "openai" and model.api_key is None:
            # Self-hosted OpenAI-compatible servers (vLLM, llama.cpp, LM Studio) rarely check the key.
            model = dataclasses.replace(model, api_key="no-key")
        elif missing and model.api_key is None:
            raise UserError(
                f"model {model.name} needs {', '.join(missing)} in the environment; export it before "
                "`discovery run` (keys are read by the host only and never enter a sandbox)"
            )
        ready.append(model)
    return ready


def _is_transient(exc: BaseException) -> bool:
    """Rate limits, timeouts, connection failures and 5xx are worth retrying; the rest are not."""
    litellm = _litellm()
    transient = (
        litellm.RateLimitError,
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
    )
    return isinstance(exc, transient)


def _is_fatal(exc: BaseException) -> bool:
    """Errors that every later call would hit too: bad key, no access, unknown model."""
    litellm = _litellm()
    return isinstance(
        exc, (litellm.AuthenticationError, litellm.PermissionDeniedError, litellm.NotFoundError)
    )


def _cost(litellm, response) -> float | None:
    """USD cost of a response as litellm prices it, or None when the model's price is unknown."""
    hidden = getattr(response, "_hidden_params", {}) or {}
    cost = hidden.get("response_cost")
    # litellm has already priced the response when the key is there; pricing again costs milliseconds.
    if cost is None and "response_cost" not in hidden:
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:  # noqa: BLE001 - unknown model prices are normal for local servers
            return None
    return float(cost) if cost is not None else None


@dataclasses.dataclass
class LLMClient:
    """Sends chat requests through litellm, retrying transient failures with backoff."""

    models: list[ModelSpec]
    temperature: float = 0.8
    max_tokens: int = 4096
    timeout_s: float = 300.0
    attempts: int = 4
    max_wait_s: float = 30.0

    def choose(self, rng: random.Random) -> ModelSpec:
        """Pick a model of the ensemble by weight."""
        return rng.choices(self.models, weights=[m.weight for m in self.models], k=1)[0]

    async def complete(self, model: ModelSpec, messages: list[dict[str, str]], seed: int) -> Reply:
        """One chat completion; raises LLMFailure when no usable reply comes back."""
        reply, finish_reason, refusal = await self.request(
            model, messages, seed, self.temperature, self.max_tokens
        )
        if finish_reason == "content_filter" or refusal:
            raise LLMFailure(
                "refused", f"the provider refused to answer ({finish_reason})", usage=reply.usage()
            )
        if not reply.text.strip():
            raise LLMFailure("empty", "the reply was empty", usage=reply.usage())
        return reply

    async def request(
        self,
        model: ModelSpec,
        messages: list[dict[str, Any]],
        seed: int | None,
        temperature: float,
        max_tokens: int,
    ) -> tuple[Reply, str | None, bool]:
        """One chat completion with tenacity retries: the reply, its finish reason, and whether it was refused.

        Raises LLMFailure only when the provider gave no response at all (after the retries).
        """
        litellm = _litellm()
        kwargs: dict[str, Any] = {
            "model": model.name,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "timeout": self.timeout_s,
            "drop_params": True,  # providers without `seed` support drop it instead of failing
            "num_retries": 0,  # tenacity below is the only retry layer
            "max_retries": 0,
        }
        if seed is not None:
            kwargs["seed"] = (
                seed  # each request its own seed: a fixed one made identical prompts give identical replies
            )
        if model.api_base:
            kwargs["api_base"] = model.api_base
        if model.api_key:
            kwargs["api_key"] = model.api_key
        start = time.monotonic()
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_is_transient),
                stop=stop_after_attempt(self.attempts),
                wait=wait_random_exponential(multiplier=1, max=self.max_wait_s),
                reraise=True,
            ):
                with attempt:
                    response = await litellm.acompletion(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every provider failure becomes a recorded LLMFailure
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            raise LLMFailure("error", message, fatal=_is_fatal(exc)) from exc
        latency = time.monotonic() - start
        usage = getattr(response, "usage", None)
        choice = response.choices[0]
        reply = Reply(
            text=choice.message.content or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=_cost(litellm, response),
            latency_s=latency,
        )
        return reply, choice.finish_reason, bool(getattr(choice.message, "refusal", None))


def estimate_cost(model: ModelSpec, prompt_tokens: int, completion_tokens: int) -> float:
    """USD litellm would charge for this many tokens on the model, or 0 when its price is unknown."""
    litellm = _litellm()
    try:
        prompt_usd, completion_usd = litellm.cost_per_token(
            model=model.name, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:  # noqa: BLE001 - local and self-hosted models have no price
        return 0.0
    return float(prompt_usd + completion_usd)
