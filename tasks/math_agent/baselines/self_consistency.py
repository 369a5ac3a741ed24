"""ADAS baseline: self-consistency. Sample several chains of thought and take the majority answer."""

import collections
import re

from discovery_harness import llm


# EVOLVE-BLOCK-START
def forward(question: str) -> str:
    """Five chains at temperature 0.8, one request with n=5; the most common final number wins."""
    replies = llm.chat(
        [{"role": "user", "content": f"{question}\n\nThink step by step. End with 'Answer: <number>'."}],
        temperature=0.8,
        max_tokens=512,
        n=5,
    )
    answers = []
    for reply in replies:
        found = re.findall(r"Answer:\s*\$?(-?[\d,]+(?:\.\d+)?)", reply)
        if found:
            answers.append(found[-1].replace(",", ""))
    if not answers:
        return replies[0]
    return collections.Counter(answers).most_common(1)[0][0]


# EVOLVE-BLOCK-END
