"""Sandbox backends that run untrusted candidates: process (resources only), bwrap, docker."""

from discovery.sandbox.base import Limits, Mount, Sandbox, SandboxJob, SandboxResult, SandboxUnavailable

__all__ = ["Limits", "Mount", "Sandbox", "SandboxJob", "SandboxResult", "SandboxUnavailable"]
