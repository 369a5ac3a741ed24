"""A math agent: forward(question) -> answer, calling the run's model through discovery_harness.llm."""

import re

from discovery_harness import llm


# EVOLVE-BLOCK-START
def forward(question: str) -> str:
    """Chain-of-thought (ADAS baseline): reason step by step, then state the final number."""
    reply = llm.chat(
        [
            {"role": "system", "content": "You are a careful assistant who solves arithmetic word problems."},
            {
                "role": "user",
                "content": f"{question}\n\nThink step by step. End with a line 'Answer: <number>'.",
            },
        ],
        temperature=0.0,
        max_tokens=384,
    )
    found = re.findall(r"Answer:\s*\$?(-?[\d,]+(?:\.\d+)?)", reply)
    return found[-1] if found else reply


# EVOLVE-BLOCK-END
