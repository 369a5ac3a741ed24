"""discovery: discover agents and algorithms with LLMs, safely."""

__version__ = "0.1.0"
