"""ADAS baseline: self-refine. Answer, critique the answer, and correct it, for a few rounds."""

import re

from discovery_harness import llm

ANSWER = re.compile(r"Answer:\s*\$?(-?[\d,]+(?:\.\d+)?)")


# EVOLVE-BLOCK-START
def forward(question: str) -> str:
    """A first chain of thought, then up to two critique-and-correct rounds; stops when the critic agrees."""
    messages = [
        {"role": "user", "content": f"{question}\n\nThink step by step. End with 'Answer: <number>'."}
    ]
    reply = llm.chat(messages, temperature=0.0, max_tokens=512)
    for _round in range(2):
        try:
            critique = llm.chat(
                [
                    {
                        "role": "user",
                        "content": f"Problem: {question}\n\nProposed solution:\n{reply}\n\n"
                        "Check every step. If it is all correct, write exactly 'CORRECT'. "
                        "Otherwise explain the mistake.",
                    }
                ],
                temperature=0.0,
                max_tokens=256,
            )
            if critique.strip().upper().startswith("CORRECT"):
                break
            messages += [
                {"role": "assistant", "content": reply},
                {
                    "role": "user",
                    "content": f"Feedback: {critique}\nSolve it again. End with 'Answer: <number>'.",
                },
            ]
            reply = llm.chat(messages, temperature=0.0, max_tokens=512)
        except llm.BudgetExceeded:
            break  # out of budget: keep the best answer so far
    found = ANSWER.findall(reply)
    return found[-1] if found else reply


# EVOLVE-BLOCK-END
